"""The typed apply options (schemabot/apply_options.py): what is stored reads back the same,
rows of older versions stay readable, and the engine is given what the driver always gave it."""

from __future__ import annotations

from typing import Any

import pytest

from engines.base import ApplyOptions
from schemabot.apply_options import StoredOptions
from schemabot.driver import options_of

# As submissions of this and earlier versions stored them.
STORED: list[dict[str, Any]] = [
    {"defer_cutover": False, "skip_revert": False, "atomic": False},
    {"defer_cutover": True, "skip_revert": False, "atomic": True, "volume": 9, "queue": True},
    {
        "defer_cutover": False, "skip_revert": True, "atomic": False, "revert_window_seconds": 60,
        "extra": {"chunk_time": "2s"}, "after": "apply-1",
    },
    {"defer_cutover": True, "skip_revert": False},  # before `atomic` was stored
    {"defer_cutover": False, "skip_revert": False, "a_later_key": [1, 2]},  # a newer version's key
]


@pytest.mark.parametrize("raw", STORED)
def test_stored_options_read_back_unchanged(raw: dict[str, Any]) -> None:
    assert StoredOptions.from_stored(raw).to_stored() == raw


def test_missing_keys_take_their_defaults() -> None:
    for raw in (None, {}):
        options = StoredOptions.from_stored(raw)
        assert options == StoredOptions()
        assert options.atomic is None and options.for_engine() == ApplyOptions()


def test_the_engine_is_given_the_options_it_was_always_given() -> None:
    raw = {"defer_cutover": 1, "skip_revert": None, "volume": 4, "revert_window_seconds": 30,
           "extra": {"k": "v"}, "queue": True, "atomic": True}  # fmt: skip
    assert options_of(raw) == ApplyOptions(
        defer_cutover=True, skip_revert=False, volume=4, revert_window_seconds=30, extra={"k": "v"}
    )
    assert options_of(None) == ApplyOptions()
