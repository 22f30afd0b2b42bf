"""An apply's options, typed, and the one place they become the stored JSON and back.

`apply.options` is a JSON column (docs/architecture.md §2, apply). Before this module each side
of the storage seam read it as a dict with its own `.get`s: the producer API built one by hand,
the driver turned one into the engines' `ApplyOptions`, `wait` looked keys up by name. Now the
keys, their defaults and their types are written down once, here.

Rows stored by older versions stay readable: a missing key takes its default (`atomic` is None,
"not decided at submission", in rows from before it was stored), and a key this version does
not know is kept as it was (`unknown`), so reading and writing back loses nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engines.base import ApplyOptions

_KNOWN = (
    "defer_cutover", "skip_revert", "atomic", "volume", "revert_window_seconds", "extra", "queue", "after"
)  # fmt: skip


@dataclass(frozen=True)
class StoredOptions:
    """What a producer asked for, as kept on the apply row."""

    defer_cutover: bool = False
    skip_revert: bool = False
    # Decided once at submission (schemabot/grouping.py); None in rows from before it was stored.
    atomic: bool | None = None
    volume: int | None = None  # set again by a `volume` control (storage/fenced_writes.py)
    revert_window_seconds: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # checked engine_options (engines/options.py)
    queue: bool = False
    after: str | None = None
    unknown: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_stored(cls, raw: Mapping[str, Any] | None) -> StoredOptions:
        """Read the stored JSON (None or {} for no options at all)."""
        raw = dict(raw or {})
        return cls(
            defer_cutover=bool(raw.get("defer_cutover")),
            skip_revert=bool(raw.get("skip_revert")),
            atomic=None if raw.get("atomic") is None else bool(raw["atomic"]),
            volume=raw.get("volume"),
            revert_window_seconds=raw.get("revert_window_seconds"),
            extra=dict(raw.get("extra") or {}),
            queue=bool(raw.get("queue")),
            after=raw.get("after"),
            unknown={k: v for k, v in raw.items() if k not in _KNOWN},
        )

    def to_stored(self) -> dict[str, Any]:
        """The JSON to store: the two cutover flags always, every other key only when set (as
        submissions always wrote it, so the request hash of an idempotent resubmit is unchanged)."""
        out: dict[str, Any] = {"defer_cutover": self.defer_cutover, "skip_revert": self.skip_revert}
        if self.atomic is not None:
            out["atomic"] = self.atomic
        if self.volume is not None:
            out["volume"] = self.volume
        if self.revert_window_seconds is not None:
            out["revert_window_seconds"] = self.revert_window_seconds
        if self.extra:
            out["extra"] = dict(self.extra)
        if self.queue:
            out["queue"] = True
        if self.after is not None:
            out["after"] = self.after
        out.update(self.unknown)
        return out

    def for_engine(self) -> ApplyOptions:
        """The options an engine honours (engines/base.py)."""
        return ApplyOptions(
            defer_cutover=self.defer_cutover,
            skip_revert=self.skip_revert,
            volume=self.volume,
            revert_window_seconds=self.revert_window_seconds,
            extra=dict(self.extra),
        )
