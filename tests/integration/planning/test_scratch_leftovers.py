"""Scratch schemas left by a killed plan process are dropped by the next plan (issue 13 §1: the
scratch schema is always removed), on MariaDB: only those older than an hour by their name whose
lock no connection holds; never one a concurrent plan is using, nor one whose age is unknown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engines.targets import Target
from schemabot.planning.planner import Planner
from schemabot.planning.scratch import scratch_schema
from tests.support.mariadb import connect, fresh_schema, mysql_dsn, plan_scratch_schemas

pytestmark = pytest.mark.integration


@pytest.fixture
def target() -> Iterator[Target]:
    with fresh_schema("sbt_leftover") as name:
        conn = connect(name)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, a INT)")
        conn.close()
        yield Target("shop", mysql_dsn(name))


def test_a_plan_drops_old_unlocked_leftovers_only(target: Target) -> None:
    conn = connect()
    cur = conn.cursor()
    cur.execute("SELECT UNIX_TIMESTAMP()")
    now = int(cur.fetchone()[0])
    old_free = f"_sb_plan_{now - 7200}_dead0001"
    old_in_use = f"_sb_plan_{now - 7200}_dead0002"
    young = f"_sb_plan_{now - 60}_dead0003"
    unknown_age = "_sb_plan_0123456789ab"  # a name from before the time was in it
    made = [old_free, old_in_use, young, unknown_age]
    for name in made:
        cur.execute(f"CREATE DATABASE `{name}`")
    holder = connect()  # a long plan still using its scratch schema
    holder_cur = holder.cursor()
    holder_cur.execute("SELECT GET_LOCK(%s, 0)", (old_in_use,))
    assert holder_cur.fetchone()[0] == 1
    try:
        Planner(target).plan_ddl(["ALTER TABLE t ADD COLUMN b INT"])
        left = plan_scratch_schemas()
        assert old_free not in left
        assert {old_in_use, young, unknown_age} <= left
        holder.close()  # the process holding it dies: its lock goes with its connection
        Planner(target).plan_ddl(["ALTER TABLE t ADD COLUMN b INT"])
        assert old_in_use not in plan_scratch_schemas()
    finally:
        for name in made:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def test_a_scratch_schema_is_locked_while_in_use(target: Target) -> None:
    conn, other = connect(), connect()
    try:
        with scratch_schema(conn) as name, other.cursor() as cur:
            cur.execute("SELECT IS_FREE_LOCK(%s)", (name,))
            assert cur.fetchone()[0] == 0
        with other.cursor() as cur:
            cur.execute("SELECT IS_FREE_LOCK(%s)", (name,))
            assert cur.fetchone()[0] == 1
        assert name not in plan_scratch_schemas()
    finally:
        conn.close()
        other.close()
