"""Engine options cross the state database as JSON (`ApplyOptions.extra`) and are read back,
typed, through the engine's own model (engines/options.py:read_options)."""

from __future__ import annotations

import json

from engines.options import PlanetScaleOptions, SpiritOptions, check_options, read_options


def test_options_checked_at_submit_read_back_as_typed_values() -> None:
    stored = json.loads(json.dumps(check_options("spirit", SpiritOptions, {
        "chunk_rows": 500, "trailing_checksum": False, "max_replica_lag_seconds": 2.5,
    })))  # fmt: skip
    options = read_options(SpiritOptions, stored)
    assert options.chunk_rows == 500 and options.trailing_checksum is False
    assert options.max_replica_lag_seconds == 2.5 and options.lock_wait_seconds is None


def test_absent_options_are_none_so_the_engine_default_applies() -> None:
    options = read_options(PlanetScaleOptions, {})
    assert options.instant_ddl is None and options.defer_deploy is None


def test_a_key_the_model_no_longer_knows_is_ignored_for_work_in_flight() -> None:
    assert read_options(SpiritOptions, {"chunk_rows": 10, "retired_knob": 1}).chunk_rows == 10


def test_values_outside_the_submit_limits_reach_an_engine_called_directly() -> None:
    assert read_options(SpiritOptions, {"max_threads_running": 0}).max_threads_running == 0
