"""The phase enum (engines/spirit/checkpoint.py): its values are what `_sb_spirit_checkpoint`
stores, so rows written before the enum existed must read back as the same members, and the
declaration order is the order a run passes through (the engine ranks tables by it)."""

from __future__ import annotations

from engines.spirit.checkpoint import FINISHED, Checkpoint, Phase, _from_row, _to_db


def test_stored_values_are_the_strings_earlier_engines_wrote() -> None:
    assert [p.value for p in Phase] == [
        "setup", "copy", "index", "checksum", "wait_cutover", "cutover", "done", "cancelled",
        "failed",
    ]
    assert FINISHED == ("done", "cancelled", "failed")


def _row(phase: str) -> dict[str, object]:
    return {
        "table_name": "t", "context": "c", "format": 1, "run_id": "r", "kind": "copy",
        "statement": "ALTER TABLE t ENGINE=InnoDB", "statement_hash": "h", "shadow_name": "s",
        "old_name": "o", "source_fingerprint": None, "shadow_fingerprint": None,
        "group_tables": '["t"]', "phase": phase, "copy_watermark": None,
        "checksum_watermark": None, "stopped": 0,
    }


def test_a_stored_string_reads_back_as_the_member_and_is_written_as_the_string() -> None:
    for member in Phase:
        cp: Checkpoint = _from_row("db", _row(member.value))
        assert cp.phase is member
        written = _to_db(cp, "phase")
        assert type(written) is str and written == member.value
