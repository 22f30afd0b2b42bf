"""Invariant 7: an online copy loses and changes no row, under concurrent writes, across a
worker killed mid-copy.

Four writer threads insert, update, delete and change primary keys on the table while the copy
runs; every write is mirrored into `expected` in the same transaction, so `expected` is exactly
what the table must hold. The worker process is SIGKILLed mid-copy, writes go on with no worker
alive (the triggers carry them), and a fresh engine in another process finishes the job.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pymysql
import pytest

from engines.base import EngineState, OperationRequest
from tests.integration.spirit.support import (
    Worker,
    checkpoint_row,
    engine,
    request,
    run_until,
    triggers,
    wait_for,
)
from tests.support.mariadb import connect

DATA_COLUMNS = """
  big BIGINT NULL,
  dc DECIMAL(30,10) NULL,
  dt DATETIME(6) NULL,
  ts TIMESTAMP NULL DEFAULT NULL,
  js JSON NULL,
  en ENUM('a','b','c') NULL,
  st SET('x','y','z') NULL,
  bt BIT(12) NULL,
  bl BLOB NULL,
  tx VARCHAR(100) CHARACTER SET utf8mb4 NULL,
  nn INT NULL
"""
DATA = ["big", "dc", "dt", "ts", "js", "en", "st", "bt", "bl", "tx", "nn"]
ROWS = 3000
ALTER = "ALTER TABLE t ADD COLUMN added INT NOT NULL DEFAULT 42, ADD INDEX idx_big (big)"

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Shape:
    name: str
    key_ddl: str
    key: tuple[str, ...]
    make_key: Callable[[int, int], tuple[Any, ...]]


SHAPES = [
    Shape(
        "int_unsigned",
        "id INT UNSIGNED NOT NULL, PRIMARY KEY (id)",
        ("id",),
        lambda thread, n: (thread * 10_000_000 + n + 1,),
    ),
    Shape(
        "composite",
        "a INT NOT NULL, b VARCHAR(16) CHARACTER SET utf8mb4 NOT NULL, PRIMARY KEY (a, b)",
        ("a", "b"),
        lambda thread, n: (n // 3, f"t{thread}-😀{n % 3}"),
    ),
    Shape(
        "varchar",
        "k VARCHAR(64) CHARACTER SET utf8mb4 NOT NULL, PRIMARY KEY (k)",
        ("k",),
        lambda thread, n: (f"k{thread}-{n:07d}-😀",),
    ),
]


def _values(rng: random.Random) -> list[Any]:
    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.1 else value

    return [
        maybe(rng.choice([-(2**63), 2**63 - 1, rng.randint(-(2**40), 2**40)])),
        maybe(Decimal(rng.randint(-(10**15), 10**15)) / Decimal(10**6)),
        maybe(
            dt.datetime(2001, 1, 1)
            + dt.timedelta(seconds=rng.randint(0, 10**9), microseconds=rng.randint(0, 999999))
        ),
        maybe(dt.datetime(2005, 1, 1) + dt.timedelta(seconds=rng.randint(0, 10**8))),
        maybe(json.dumps({"n": rng.randint(0, 1000), "s": "ñ😀", "l": [1, None]})),
        maybe(rng.choice("abc")),
        maybe(rng.choice(["", "x", "y,z", "x,y,z"])),
        maybe(rng.randint(0, 4095)),
        maybe(rng.randbytes(rng.randint(0, 64))),
        maybe(f"🦀 text ñ {rng.random()}"),
        maybe(rng.randint(-1000, 1000)),
    ]


class Writers:
    """Four threads, each owning a disjoint set of keys, mirroring every write into `expected`."""

    def __init__(self, schema: str, shape: Shape, initial: dict[int, list[tuple[Any, ...]]]):
        self.schema, self.shape = schema, shape
        self.keys = initial
        self.next = {t: len(initial[t]) + 100_000 for t in initial}
        self.stop = threading.Event()
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in initial]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def total(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def _where(self) -> str:
        return " AND ".join(f"`{c}` = %s" for c in self.shape.key)

    def _run(self, thread: int) -> None:
        rng = random.Random(thread)
        conn = connect(self.schema)
        cols = ", ".join([*self.shape.key, *DATA])
        marks = ", ".join(["%s"] * (len(self.shape.key) + len(DATA)))
        sets = ", ".join(f"`{c}` = %s" for c in DATA)
        keyset = ", ".join(f"`{c}` = %s" for c in self.shape.key)
        mine = self.keys[thread]
        with conn.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 2")
            while not self.stop.is_set():
                op = rng.choice(["insert", "update", "update", "delete", "pk_change"])
                if op != "insert" and not mine:
                    op = "insert"
                statements: list[tuple[str, list[Any]]] = []
                if op == "insert":
                    key = self.shape.make_key(thread, self.next[thread])
                    self.next[thread] += 1
                    params = [*key, *_values(rng)]
                    statements = [
                        (f"INSERT INTO {t} ({cols}) VALUES ({marks})", params)
                        for t in ("t", "expected")
                    ]
                else:
                    index = rng.randrange(len(mine))
                    key = mine[index]
                    if op == "update":
                        params = [*_values(rng), *key]
                        statements = [
                            (f"UPDATE {t} SET {sets} WHERE {self._where()}", params)
                            for t in ("t", "expected")
                        ]
                    elif op == "delete":
                        statements = [
                            (f"DELETE FROM {t} WHERE {self._where()}", list(key))
                            for t in ("t", "expected")
                        ]
                    else:
                        new_key = self.shape.make_key(thread, self.next[thread])
                        self.next[thread] += 1
                        params = [*new_key, *key]
                        statements = [
                            (f"UPDATE {t} SET {keyset} WHERE {self._where()}", params)
                            for t in ("t", "expected")
                        ]
                try:
                    cur.execute("BEGIN")
                    for sql, params in statements:
                        cur.execute(sql, params)
                    cur.execute("COMMIT")
                except pymysql.MySQLError as error:
                    cur.execute("ROLLBACK")
                    with self.lock:
                        self.errors[str(error.args[0])] += 1
                    continue
                if op == "insert":
                    mine.append(key)
                elif op == "delete":
                    mine.pop(index)
                elif op == "pk_change":
                    mine[index] = new_key
                with self.lock:
                    self.counts[op] += 1
        conn.close()


def _create(schema: str, shape: Shape) -> dict[int, list[tuple[Any, ...]]]:
    conn = connect(schema)
    rng = random.Random(99)
    initial: dict[int, list[tuple[Any, ...]]] = {t: [] for t in range(4)}
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE t ({shape.key_ddl}, {DATA_COLUMNS}) CHARACTER SET utf8mb4")
        cur.execute("CREATE TABLE expected LIKE t")
        cols = ", ".join([*shape.key, *DATA])
        marks = ", ".join(["%s"] * (len(shape.key) + len(DATA)))
        rows = []
        for n in range(ROWS):
            thread = n % 4
            key = shape.make_key(thread, n // 4)
            initial[thread].append(key)
            rows.append([*key, *_values(rng)])
        if shape.name == "int_unsigned":
            rows.append([4294967295, *_values(rng)])  # INT UNSIGNED at its maximum; never written
        for table in ("t", "expected"):
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
    conn.close()
    return initial


def _differences(schema: str, shape: Shape) -> dict[str, int]:
    on = " AND ".join(f"e.`{c}` = t.`{c}`" for c in shape.key)
    first = shape.key[0]
    differ = " OR ".join(f"NOT (e.`{c}` <=> t.`{c}`)" for c in DATA)
    conn = connect(schema)
    with conn.cursor() as cur:
        found = {}
        for name, sql in {
            "missing": f"SELECT COUNT(*) FROM expected e LEFT JOIN t ON {on} "
            f"WHERE t.`{first}` IS NULL",
            "extra": f"SELECT COUNT(*) FROM t LEFT JOIN expected e ON {on} "
            f"WHERE e.`{first}` IS NULL",
            "differing": f"SELECT COUNT(*) FROM expected e JOIN t ON {on} WHERE {differ}",
            "added_not_default": "SELECT COUNT(*) FROM t WHERE added <> 42",
        }.items():
            cur.execute(sql)
            found[name] = int(cur.fetchone()[0])
    conn.close()
    return found


def run_killed_mid_copy(
    schema: str,
    shape: Shape,
    req: OperationRequest,
    on_kill: Callable[[dict[str, Any]], None] | None = None,
    resumes_at: str | None = None,
) -> Writers:
    """`req` in a worker process while the four writers write; the worker SIGKILLed once 40% of
    the rows are copied; writes going on with no worker alive; a fresh engine continuing to the
    cutover while they write, and on after it. The table must end exactly as `expected`, every
    kind of write having happened. `on_kill` looks at the checkpoint as the kill left it;
    `resumes_at`, a phrase of the fresh engine's resume point. Returns the writers."""
    writers = Writers(schema, shape, _create(schema, shape))
    writers.start()
    try:
        worker = Worker(schema, req, pause=0.03)

        def copied_enough() -> bool:
            row = checkpoint_row(schema, "t")
            return bool(row and row["phase"] == "copy" and row["rows_copied"] >= ROWS * 0.4)

        wait_for(copied_enough, 60, "the worker to copy 40% of the rows")
        worker.kill()
        killed_at = checkpoint_row(schema, "t")
        assert killed_at is not None and killed_at["phase"] == "copy"
        if on_kill is not None:
            on_kill(killed_at)

        # No worker alive: writes go on, and the change source keeps them for the shadow.
        before = writers.total()
        wait_for(lambda: writers.total() >= before + 200, 60, "writes while no worker lives")

        eng = engine(schema)
        attached = eng.apply(req)
        assert attached.accepted and attached.reattached and attached.restart_reason is None
        if resumes_at is not None:
            assert attached.resume_point and resumes_at in attached.resume_point
        result = run_until(eng, req)
        assert result.state == EngineState.COMPLETED
        eng.close()
        after_cutover = writers.total()
        wait_for(lambda: writers.total() >= after_cutover + 100, 60, "writes after cutover")
    finally:
        writers.join()

    assert _differences(schema, shape) == {
        "missing": 0,
        "extra": 0,
        "differing": 0,
        "added_not_default": 0,
    }
    assert all(writers.counts[op] > 0 for op in ("insert", "update", "delete", "pk_change")), (
        writers.counts
    )
    return writers


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_copy_under_write_load_with_worker_killed_mid_copy_loses_nothing(
    schema: str, shape: Shape
) -> None:
    req = request([(schema, "t", ALTER)], step_budget=0.05, chunk_rows=100)
    run_killed_mid_copy(schema, shape, req, resumes_at="copy watermark")
    assert triggers(schema) == set()
