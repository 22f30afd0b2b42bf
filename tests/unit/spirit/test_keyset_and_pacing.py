"""Watermarks keep their types; keyset predicates; chunk sizing; volume; cutover decisions."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from engines.spirit.chunker import MAX_CHUNK, MIN_CHUNK, ChunkSizer, is_integer_key
from engines.spirit.cutover import Presence, decide, decide_one, rename_statement
from engines.spirit.keyset import dump_key, key_range, load_key
from engines.spirit.naming import TableNames
from engines.spirit.tableinfo import fingerprint_of
from engines.spirit.volume import pace, parse_volume


def test_watermarks_round_trip_with_their_types() -> None:
    key = (
        4294967295,
        2**64 - 1,
        Decimal("-12.3400"),
        dt.datetime(2024, 2, 29, 23, 59, 59, 123456),
        dt.date(2024, 1, 1),
        dt.timedelta(hours=-3, seconds=1),
        b"\x00\xff",
        "ñ😀",
        None,
    )
    assert load_key(dump_key(key)) == key
    assert load_key(None) is None


def test_composite_key_range_is_an_or_of_prefixes_with_an_index_friendly_bound() -> None:
    sql, params = key_range(("a", "b"), (1, "x"), (5, "y"))
    assert sql == (
        "(`a` >= %s AND ((`a` > %s) OR (`a` = %s AND `b` > %s))) AND "
        "(`a` <= %s AND ((`a` < %s) OR (`a` = %s AND `b` <= %s)))"
    )
    assert params == [1, 1, 1, "x", 5, 5, 5, "y"]
    assert key_range(("a",), None, None) == ("1=1", [])


def test_chunk_sizer_moves_towards_the_target_time_at_most_doubling_or_halving() -> None:
    sizer = ChunkSizer(1000, 0.5)
    sizer.record(0.01)
    assert sizer.size == 2000
    sizer.record(5.0)
    assert sizer.size == 1000
    sizer.record(0.0, full=False)
    assert sizer.size == 1000
    tiny = ChunkSizer(MIN_CHUNK, 0.5)
    tiny.record(10)
    assert tiny.size == MIN_CHUNK
    big = ChunkSizer(MAX_CHUNK, 0.5)
    big.record(0.001)
    assert big.size == MAX_CHUNK
    fixed = ChunkSizer(100, 0.5, fixed=True)
    fixed.record(0.001)
    assert fixed.size == 100


def test_a_step_fits_as_many_chunks_as_their_measured_time_allows() -> None:
    """A fixed chunk (`chunk_rows`) is judged by the time the last one took, not by the volume's
    target: at volume 11 (1.5 s chunks) with 1 s steps, a step copied one chunk per lane."""
    now = time.monotonic()
    fixed = ChunkSizer(100, 1.5, fixed=True)
    assert not fixed.fits_before(now + 1.0)  # nothing measured yet: the target
    fixed.record(0.01)
    assert fixed.fits_before(time.monotonic() + 1.0)
    adapting = ChunkSizer(1000, 0.5)
    adapting.record(0.01)  # its next chunk grows at most to twice this one's time
    assert adapting.fits_before(time.monotonic() + 0.1)
    adapting.record(0.4)
    assert not adapting.fits_before(time.monotonic() + 0.3)  # towards the 0.5 s target
    adapting.record(0.3, full=False)  # a short last chunk says nothing
    assert adapting.last_seconds == 0.4


def test_only_single_integer_keys_are_chunked_by_span() -> None:
    assert is_integer_key(["int(10) unsigned"]) and is_integer_key(["bigint(20)"])
    assert not is_integer_key(["varchar(20)"]) and not is_integer_key(["int(11)", "int(11)"])


def test_volume_maps_to_pace_and_refuses_out_of_range() -> None:
    assert pace(1).pause_ratio > pace(5).pause_ratio > pace(11).pause_ratio == 0
    assert pace(1).chunk_seconds < pace(11).chunk_seconds
    assert pace(None) == pace(8)
    assert parse_volume("11") == 11
    for bad in ("0", "12", "x", None):
        with pytest.raises(ValueError):
            parse_volume(bad)


def test_fingerprint_ignores_the_table_name_and_auto_increment() -> None:
    a = "CREATE TABLE `t` (\n  `id` int NOT NULL\n) ENGINE=InnoDB AUTO_INCREMENT=5"
    b = "CREATE TABLE `_t_new` (\n  `id` int NOT NULL\n) ENGINE=InnoDB AUTO_INCREMENT=99"
    assert fingerprint_of(a) == fingerprint_of(b)
    assert fingerprint_of(a) != fingerprint_of(a.replace("int", "bigint"))


SRC, NEW = "source-fp", "shadow-fp"


@pytest.mark.parametrize(
    ("presence", "outcome"),
    [
        (Presence(SRC, NEW, old_present=False), "not_renamed"),
        (Presence(NEW, None, old_present=True), "renamed"),
        (Presence(NEW, None, old_present=False), "renamed"),  # old already dropped
        (Presence(SRC, None, old_present=False), "ambiguous"),  # shadow vanished, no rename
        (Presence(None, NEW, old_present=True), "ambiguous"),  # table missing
        (Presence(SRC, NEW, old_present=True), "ambiguous"),
        (Presence("other", NEW, old_present=False), "ambiguous"),  # altered by someone
    ],
)
def test_cutover_outcome_is_read_from_the_tables_present(presence: Presence, outcome: str) -> None:
    assert decide_one(presence, SRC, NEW) == outcome


def test_an_alter_that_keeps_the_definition_needs_the_old_table_as_proof() -> None:
    assert decide_one(Presence(SRC, None, old_present=True), SRC, SRC) == "renamed"
    assert decide_one(Presence(SRC, None, old_present=False), SRC, SRC) == "ambiguous"


def test_mixed_outcomes_over_tables_are_ambiguous() -> None:
    assert decide(["renamed", "renamed"]) == "renamed"
    assert decide(["renamed", "not_renamed"]) == "ambiguous"


def test_one_rename_statement_swaps_every_table() -> None:
    sql = rename_statement([TableNames("a", "t"), TableNames("b", "u")])
    assert sql == (
        "RENAME TABLE `a`.`t` TO `a`.`_sb_t_old`, `a`.`_sb_t_new` TO `a`.`t`, "
        "`b`.`u` TO `b`.`_sb_u_old`, `b`.`_sb_u_new` TO `b`.`u`"
    )


@pytest.mark.parametrize(
    ("code", "retried_here"),
    [(1205, True), (1213, True), (2006, False), (2013, False), (1064, False)],
)
def test_a_chunk_is_retried_in_place_only_after_a_lock_wait(code: int, retried_here: bool) -> None:
    """A lock wait or deadlock retries the chunk at once, halved; a lost connection (the shared
    `LOST_MID_QUERY`) or a verdict goes back to the next step (engines/spirit/chunker.py)."""
    import pymysql

    from engines.base import RetryableEngineError

    sizer = ChunkSizer(1000, 0.5)
    error = pymysql.err.OperationalError(code, "x")
    if retried_here:
        sizer.retry_smaller(error, 0, "copying")
        assert sizer.size == 500
    else:
        with pytest.raises(RetryableEngineError):
            sizer.retry_smaller(error, 0, "copying")
