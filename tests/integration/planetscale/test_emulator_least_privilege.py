"""Issue 14 §4: a branch password reaches its branch's keyspaces and nothing else.

Before, the proxy logged in to MariaDB as the emulator's own DSN user (root): through any branch
password `mysql.user` and every other schema (the schemabot state database) were readable.
"""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from tests.integration.planetscale.test_emulator_api import ok, ready_branch
from tests.support.emulator_process import EmulatorProcess
from tests.support.mariadb import connect, fresh_schema

pytestmark = pytest.mark.integration


def login(pw: dict[str, Any], database: str | None = None) -> pymysql.Connection:
    host, _, port = pw["access_host_url"].rpartition(":")
    return pymysql.connect(
        host=host,
        port=int(port),
        user=pw["username"],
        password=pw["plain_text"],
        database=database,
        autocommit=True,
    )


def server_users(prefix: str) -> set[str]:
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT DISTINCT User FROM mysql.user WHERE User LIKE %s", (prefix + "%",))
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def test_branch_password_sees_only_its_branch(emulator: EmulatorProcess) -> None:
    ready_branch(emulator, "dev")
    ready_branch(emulator, "other")
    pw = ok(emulator.api("POST", "/branches/dev/passwords", name="t"), 201)
    with fresh_schema("sbt_secret_state") as secret:
        conn = login(pw, "commerce")
        with conn.cursor() as cur:
            # Its own branch: full DDL and DML, as the engine needs.
            cur.execute("CREATE TABLE lp_t (id INT PRIMARY KEY)")
            cur.execute("INSERT INTO lp_t VALUES (1)")
            cur.execute("SELECT COUNT(*) FROM product")
            cur.execute("USE customers")
            cur.execute("SELECT COUNT(*) FROM customer")
            for forbidden in (
                "SELECT User FROM mysql.user",
                f"SELECT * FROM `{secret}`.information_schema_probe",
                f"CREATE TABLE `{secret}`.stolen (id INT)",
                f"SELECT COUNT(*) FROM `{emulator.main_db('commerce')}`.product",
                f"SELECT COUNT(*) FROM `{emulator.prefix}__meta`.passwords",
            ):
                with pytest.raises(pymysql.err.OperationalError) as denied:
                    cur.execute(forbidden)
                assert denied.value.args[0] in (1044, 1142, 1143), (forbidden, denied.value)
            cur.execute("SHOW DATABASES")
            visible = {row[0] for row in cur.fetchall()}
        conn.close()
    assert visible <= {"information_schema"} | {
        n for n in visible if "__b" in n and n.startswith(emulator.prefix)
    }
    assert len(visible - {"information_schema"}) == 2  # commerce and customers of dev


def test_backing_users_go_with_their_password_and_branch(emulator: EmulatorProcess) -> None:
    ready_branch(emulator, "dev")
    first = ok(emulator.api("POST", "/branches/dev/passwords", name="a"), 201)
    second = ok(emulator.api("POST", "/branches/dev/passwords", name="b"), 201)
    users = server_users("u")
    assert {first["username"], second["username"]} <= users
    ok(emulator.api("DELETE", f"/branches/dev/passwords/{first['id']}"), 204)
    assert first["username"] not in server_users("u")
    with pytest.raises(pymysql.err.OperationalError):
        login(first)
    login(second).close()
    ok(emulator.api("DELETE", "/branches/dev"), 204)
    assert second["username"] not in server_users("u")
    with pytest.raises(pymysql.err.OperationalError):
        login(second)


def test_emulator_runs_as_a_least_privileged_user_with_its_dsn_out_of_argv() -> None:
    """The compose set-up: the emulator's own user has its schema prefix and CREATE USER only,
    and its DSN (with the password) comes from the environment, not the command line."""
    import uuid

    from tests.support.mariadb import SHARED_HOST, SHARED_PORT

    emulator = EmulatorProcess()
    user, secret = f"sbt_emu_{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}"
    conn = connect()
    try:
        with conn.cursor() as cur:
            for host in ("%", "localhost"):
                cur.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{secret}'")
                cur.execute(
                    f"GRANT ALL PRIVILEGES ON `{emulator.prefix}%`.* TO '{user}'@'{host}' WITH GRANT OPTION"
                )
                cur.execute(f"GRANT CREATE USER ON *.* TO '{user}'@'{host}'")
        emulator.dsn = f"mysql://{user}:{secret}@{SHARED_HOST}:{SHARED_PORT}/{emulator.prefix}"
        emulator.start()
        assert emulator.proc is not None
        with open(f"/proc/{emulator.proc.pid}/cmdline", "rb") as fh:
            assert secret.encode() not in fh.read()
        ready_branch(emulator, "dev")
        pw = ok(emulator.api("POST", "/branches/dev/passwords", name="t"), 201)
        branch = login(pw, "commerce")
        with branch.cursor() as cur:
            cur.execute("CREATE TABLE lp_t (id INT PRIMARY KEY)")
            with pytest.raises(pymysql.err.OperationalError):
                cur.execute("SELECT User FROM mysql.user")
        branch.close()
        ok(emulator.api("DELETE", "/branches/dev"), 204)
        assert pw["username"] not in server_users("u")
    finally:
        emulator.stop()
        emulator.drop_schemas()
        with conn.cursor() as cur:
            for host in ("%", "localhost"):
                cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
        conn.close()


def test_an_expired_password_loses_its_user(emulator: EmulatorProcess) -> None:
    ready_branch(emulator, "dev")
    pw = ok(emulator.api("POST", "/branches/dev/passwords", name="short", ttl=60), 201)
    login(pw).close()
    emulator.advance(ticks=0, seconds=120)  # the emulated clock passes the TTL
    with pytest.raises(pymysql.err.OperationalError):
        login(pw)
    assert pw["username"] not in server_users("u")
