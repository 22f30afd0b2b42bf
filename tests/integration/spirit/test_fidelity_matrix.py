"""Issue 9's fidelity matrix: column types and changes, each through the oracle
(tests/integration/spirit/oracle.py) with writers inserting, updating (primary keys too) and
deleting while spirit copies. Each case names its verdict: `identical` (spirit gives exactly the
blocking ALTER's table), `fails` (both fail, with the server's reason, and the table is left as
it was), `refused` (spirit refuses at preflight, by design).

The same cases, a representative subset, run again with the driving worker process SIGKILLed
once mid-copy: the resumed run must reach the same verdict.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import struct
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.integration.spirit.oracle import Case, run_case
from tests.support.mariadb import fresh_schema

pytestmark = pytest.mark.integration

PERMISSIVE = "NO_ENGINE_SUBSTITUTION"


@pytest.fixture
def oracle_schema() -> Iterator[str]:
    with fresh_schema("sbt_oracle") as name:
        yield name


def _maybe(rng: random.Random, value: object, nulls: float = 0.1) -> object:
    return None if rng.random() < nulls else value


def _int(lo: int, hi: int, nulls: float = 0.1):  # type: ignore[no-untyped-def]
    return lambda rng: {"v": _maybe(rng, rng.randint(lo, hi), nulls)}


def _text(alphabet: str, longest: int, nulls: float = 0.1):  # type: ignore[no-untyped-def]
    def values(rng: random.Random) -> dict[str, object]:
        n = rng.randint(0, longest)
        return {"v": _maybe(rng, "".join(rng.choice(alphabet) for _ in range(n)), nulls)}

    return values


def _point(rng: random.Random) -> dict[str, object]:
    wkb = struct.pack("<IBIdd", 0, 1, 1, rng.uniform(-180, 180), rng.uniform(-90, 90))
    return {"p": wkb, "v": rng.randint(0, 9)}


def _datetime6(rng: random.Random) -> dict[str, object]:
    base = dt.datetime(2000, 1, 1) + dt.timedelta(
        seconds=rng.randint(0, 10**9), microseconds=rng.randint(0, 999_999)
    )
    return {"v": _maybe(rng, base)}


def _zero_dates(rng: random.Random) -> dict[str, object]:
    day = rng.choice(["0000-00-00 00:00:00", "2020-00-00 00:00:00", "2019-03-04 05:06:07"])
    return {"d": day, "v": rng.randint(0, 9)}


def _json(rng: random.Random) -> dict[str, object]:
    doc = {"n": rng.randint(0, 100), "s": "ñ😀", "l": [1, None, rng.random()]}
    return {"v": _maybe(rng, json.dumps(doc))}


def _decimal(rng: random.Random) -> dict[str, object]:
    return {"v": _maybe(rng, Decimal(rng.randint(-(10**9), 10**9)) / Decimal(10**4))}


INT = "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT NULL)"
LATIN = "abcxyzéèàüßñ"

CASES = [
    Case("int_widen", INT, "ALTER TABLE t MODIFY v BIGINT NULL", _int(-(2**31), 2**31 - 1)),
    Case("int_narrow_fits", INT, "ALTER TABLE t MODIFY v TINYINT NULL", _int(-128, 127)),
    Case(
        "int_narrow_overflows",
        INT,
        "ALTER TABLE t MODIFY v TINYINT NULL",
        _int(-100, 100),
        writer_values=_int(-1000, 1000),
        expect="fails",
        errors=frozenset({1264}),
    ),
    Case("signed_to_unsigned_fits", INT, "ALTER TABLE t MODIFY v INT UNSIGNED NULL", _int(0, 10**9)),
    Case(
        "signed_to_unsigned_negative",
        INT,
        "ALTER TABLE t MODIFY v INT UNSIGNED NULL",
        _int(-(10**6), 10**6),
        expect="fails",
        errors=frozenset({1264}),
    ),
    Case(
        "decimal_precision",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v DECIMAL(14,4) NULL)",
        "ALTER TABLE t MODIFY v DECIMAL(16,2) NULL",
        _decimal,
    ),
    Case(
        "varchar_widen",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NULL)",
        "ALTER TABLE t MODIFY v VARCHAR(200) NULL",
        _text(LATIN + "😀", 20),
    ),
    Case(
        "varchar_narrow_too_long",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NULL)",
        "ALTER TABLE t MODIFY v VARCHAR(5) NULL",
        _text("abc", 5),
        writer_values=_text("abc", 20),
        expect="fails",
        errors=frozenset({1406, 1265}),
    ),
    Case(
        "text_to_blob",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v TEXT NULL)",
        "ALTER TABLE t MODIFY v MEDIUMBLOB NULL",
        _text(LATIN + "😀", 60),
    ),
    Case(
        "varbinary_to_binary",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARBINARY(16) NULL)",
        "ALTER TABLE t MODIFY v BINARY(16) NULL",
        lambda rng: {"v": _maybe(rng, rng.randbytes(rng.randint(0, 16)))},
    ),
    Case(
        "latin1_to_utf8mb4",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(40) CHARACTER SET latin1 NULL)",
        "ALTER TABLE t MODIFY v VARCHAR(40) CHARACTER SET utf8mb4 NULL",
        _text(LATIN, 40),
    ),
    Case(
        "utf8mb3_to_utf8mb4",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(40) NULL) CHARACTER SET utf8mb3",
        "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        _text(LATIN + "ж", 40),
    ),
    Case(
        "gbk_to_utf8mb4",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(40) CHARACTER SET gbk NULL)",
        "ALTER TABLE t MODIFY v VARCHAR(40) CHARACTER SET utf8mb4 NULL",
        _text("abc中文字符", 40),
    ),
    Case(
        "utf8mb4_to_gbk_unrepresentable",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(40) CHARACTER SET utf8mb4 NULL)",
        "ALTER TABLE t MODIFY v VARCHAR(40) CHARACTER SET gbk NULL",
        _text("abc中文", 10),
        writer_values=_text("abc😀", 10),
        expect="fails",
        errors=frozenset({1366}),
    ),
    Case(
        "enum_reorder_and_extend",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v ENUM('a','b','c') NULL)",
        "ALTER TABLE t MODIFY v ENUM('c','b','a','d') NULL",
        lambda rng: {"v": _maybe(rng, rng.choice("abc"))},
    ),
    Case(
        "set_reorder",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v SET('x','y','z') NULL)",
        "ALTER TABLE t MODIFY v SET('z','y','x','w') NULL",
        lambda rng: {"v": _maybe(rng, rng.choice(["", "x", "x,y", "y,z", "x,y,z"]))},
    ),
    Case(
        "bit_widen",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v BIT(8) NULL)",
        "ALTER TABLE t MODIFY v BIT(16) NULL",
        _int(0, 255),
    ),
    Case(
        "json_add_generated_index",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v JSON NULL)",
        "ALTER TABLE t ADD COLUMN n INT AS (JSON_VALUE(v, '$.n')) VIRTUAL, ADD INDEX (n)",
        _json,
    ),
    Case(
        "datetime6_to_datetime3",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v DATETIME(6) NULL)",
        "ALTER TABLE t MODIFY v DATETIME(3) NULL",
        _datetime6,
    ),
    Case(
        "timestamp_precision",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v TIMESTAMP(6) NULL DEFAULT NULL)",
        "ALTER TABLE t MODIFY v TIMESTAMP(6) NULL DEFAULT NULL, ADD COLUMN w INT",
        lambda rng: {"v": _maybe(rng, dt.datetime(2005, 1, 1) + dt.timedelta(seconds=rng.randint(0, 10**8)))},
        time_zones=("+05:00", "-03:00"),
    ),
    Case(
        "zero_dates_permissive",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, d DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00', "
        "v INT)",
        "ALTER TABLE t ADD COLUMN w INT NOT NULL DEFAULT 1",
        _zero_dates,
        sql_mode=PERMISSIVE,
    ),
    Case(
        "generated_virtual_and_stored_added",
        INT,
        "ALTER TABLE t ADD COLUMN g1 BIGINT AS (v * 2) VIRTUAL, ADD COLUMN g2 BIGINT AS (v + 1) STORED",
        _int(-1000, 1000),
    ),
    Case(
        "generated_stored_renamed",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT NULL, g BIGINT AS (v * 3) STORED)",
        "ALTER TABLE t CHANGE g g2 BIGINT AS (v * 3) STORED",
        _int(-1000, 1000),
    ),
    Case(
        "spatial_index",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, p POINT NOT NULL, v INT)",
        "ALTER TABLE t ADD SPATIAL INDEX sp (p)",
        _point,
    ),
    Case(
        "composite_key",
        "CREATE TABLE t (a INT NOT NULL, b VARCHAR(16) NOT NULL, v INT NULL, PRIMARY KEY (a, b))",
        "ALTER TABLE t ADD COLUMN w INT NOT NULL DEFAULT 9, MODIFY v BIGINT NULL",
        _int(-1000, 1000),
        key=("a", "b"),
        make_key=lambda n: (n // 3, f"k{n % 3}-é"),
    ),
    Case(
        "string_key",
        "CREATE TABLE t (k VARCHAR(40) NOT NULL PRIMARY KEY, v INT NULL)",
        "ALTER TABLE t ADD COLUMN w VARCHAR(10) NOT NULL DEFAULT 'x', ADD INDEX (v)",
        _int(-1000, 1000),
        key=("k",),
        make_key=lambda n: (f"key-{n:08d}-ñ",),
    ),
    Case("engine_rebuild", INT, "ALTER TABLE t ENGINE=InnoDB", _int(-1000, 1000)),
    Case(
        "reorder_columns",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT NULL, w VARCHAR(10) NULL)",
        "ALTER TABLE t MODIFY w VARCHAR(10) NULL FIRST, MODIFY v INT NULL AFTER w",
        lambda rng: {"v": rng.randint(0, 9), "w": _maybe(rng, "w" * rng.randint(0, 10))},
    ),
    Case(
        "default_change",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT NULL DEFAULT 1)",
        "ALTER TABLE t ALTER COLUMN v SET DEFAULT 5, ADD COLUMN w INT NOT NULL DEFAULT 7",
        _int(-1000, 1000),
    ),
    Case(
        "not_null_without_nulls",
        INT,
        "ALTER TABLE t MODIFY v INT NOT NULL",
        _int(-1000, 1000, nulls=0),
    ),
    Case(
        "not_null_with_nulls",
        INT,
        "ALTER TABLE t MODIFY v INT NOT NULL",
        _int(-1000, 1000, nulls=0),
        writer_values=_int(-1000, 1000, nulls=0.3),
        expect="fails",
        errors=frozenset({1265, 1048, 1138}),
    ),
    Case(
        "drop_column",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT NULL, gone VARCHAR(10) NULL)",
        "ALTER TABLE t DROP COLUMN gone",
        lambda rng: {"v": rng.randint(0, 9), "gone": "x"},
    ),
    Case(
        "datetime_to_timestamp",
        "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v DATETIME NULL)",
        "ALTER TABLE t MODIFY v TIMESTAMP NULL DEFAULT NULL",
        lambda rng: {"v": _maybe(rng, dt.datetime(2010, 1, 1) + dt.timedelta(seconds=rng.randint(0, 10**8)))},
        time_zones=("+05:00", "-03:00"),
        expect="refused",
        refused_with="TIMESTAMP",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fidelity(schema: str, oracle_schema: str, case: Case) -> None:
    outcome = run_case(schema, oracle_schema, case)
    assert outcome.verdict == case.expect
    if case.writers and case.expect == "identical":
        assert outcome.writes["insert"] and outcome.writes["pk_change"], outcome.writes


KILLED = [
    "int_narrow_overflows",
    "decimal_precision",
    "latin1_to_utf8mb4",
    "set_reorder",
    "composite_key",
    "string_key",
    "generated_stored_renamed",
    "not_null_with_nulls",
]


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name in KILLED], ids=lambda c: c.name
)
def test_fidelity_with_the_worker_killed_mid_copy(
    schema: str, oracle_schema: str, case: Case
) -> None:
    outcome = run_case(schema, oracle_schema, case, kill_mid_copy=True)
    assert outcome.verdict == case.expect
    if case.expect == "identical":
        assert outcome.killed_in == "copy", outcome.killed_in
