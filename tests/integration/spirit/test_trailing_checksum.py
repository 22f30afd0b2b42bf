"""The trailing checksum (engines/spirit/trailing.py): chunks are compared behind the copy on a
second connection; a chunk that differs is left to the checksum phase, which repairs it."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from engines.base import EngineState
from engines.spirit import checksum, runner
from tests.integration.spirit.support import checkpoint_row, engine, request, run_until

pytestmark = pytest.mark.integration

ALTER = "ALTER TABLE t MODIFY v VARCHAR(30) CHARACTER SET latin1 NOT NULL, ADD COLUMN n INT NULL"


def _create(db: pymysql.Connection, rows: int = 1000) -> None:
    with db.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NOT NULL)")
        cur.execute(f"INSERT INTO t SELECT seq, CONCAT('value', seq) FROM seq_1_to_{rows}")


def test_the_checksum_trails_the_copy_and_leaves_only_the_last_chunk_to_its_phase(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(db)
    req = request([(schema, "t", ALTER)], chunk_rows=100, step_budget=0)
    eng = engine(schema)
    eng.apply(req)
    eng.progress(req)
    eng.progress(req)
    row = checkpoint_row(schema, "t")
    assert row is not None and row["phase"] == "copy"
    assert row["checksum_watermark"] == row["copy_watermark"] and row["rows_checksummed"] == 200

    compared: list[tuple[Any, Any]] = []
    original = checksum.compare

    def recording(conn, names, cmap, low, high, peer=None):  # type: ignore[no-untyped-def]
        compared.append((low, high))
        return original(conn, names, cmap, low, high, peer)

    monkeypatch.setattr(checksum, "compare", recording)
    assert run_until(eng, req).state == EngineState.COMPLETED
    assert len(compared) == 1 and compared[0][1] is None, compared  # the last chunk only
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*), SUM(v = CONCAT('value', id)) FROM t")
        assert cur.fetchone() == (1000, 1000)
    eng.close()


def test_a_chunk_that_differs_behind_the_copy_is_repaired_by_the_checksum_phase(
    schema: str, db: pymysql.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(db)
    original = runner.copy_chunk

    def copy_then_tamper(cur, names, cmap, low, high, **how):  # type: ignore[no-untyped-def]
        inserted = original(cur, names, cmap, low, high, **how)
        cur.execute(f"UPDATE {names.q(names.shadow)} SET v = 'tampered' WHERE id = 250")
        return inserted

    monkeypatch.setattr(runner, "copy_chunk", copy_then_tamper)
    req = request([(schema, "t", ALTER)], chunk_rows=100, step_budget=0)
    eng = engine(schema)
    eng.apply(req)
    events: list[str] = []
    for _ in range(4):  # ids up to 400 copied; 201..300 tampered behind the copy
        events.extend(eng.progress(req).events)
    monkeypatch.setattr(runner, "copy_chunk", original)
    done = run_until(eng, req, between=lambda r: events.extend(r.events))
    events.extend(done.events)
    assert any("trailing checksum found the chunk after 200 differing" in e for e in events), events
    assert any("checksum repaired the chunk" in e for e in events), events
    with db.cursor() as cur:
        cur.execute("SELECT COUNT(*), SUM(v = CONCAT('value', id)) FROM t")
        assert cur.fetchone() == (1000, 1000)
    eng.close()
