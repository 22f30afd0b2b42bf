"""Issue 14 §5: `schemabot db upgrade` fails in one clear line, and makes utf8mb4 tables anywhere."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support.mariadb import SHARED_HOST, SHARED_PORT, connect, fresh_schema
from tests.support.processes import REPO
from tests.support.serve import SCHEMABOT

pytestmark = pytest.mark.integration


def upgrade_cli(url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMABOT_")}
    env["SCHEMABOT_DATABASE_URL"] = url
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [SCHEMABOT, "db", "upgrade"], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_missing_database_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    name = f"sbt_missing_{uuid.uuid4().hex[:8]}"
    result = upgrade_cli(f"mysql://root@{SHARED_HOST}:{SHARED_PORT}/{name}", tmp_path)
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1, result.stderr  # was a 163-line traceback
    assert name in result.stderr and "CREATE DATABASE" in result.stderr


def test_wrong_password_is_one_line(tmp_path: Path) -> None:
    user = f"sbt_u_{uuid.uuid4().hex[:6]}"
    conn = connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'right-one'")
            cur.execute(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY 'right-one'")
        result = upgrade_cli(f"mysql://{user}:wrong-one@{SHARED_HOST}:{SHARED_PORT}/anything", tmp_path)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
            cur.execute(f"DROP USER IF EXISTS '{user}'@'localhost'")
        conn.close()
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert "access denied" in result.stderr.lower() and "wrong-one" not in result.stderr


def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    from tests.support.servers import free_port

    result = upgrade_cli(f"mysql://root@127.0.0.1:{free_port()}/x", tmp_path)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr


def test_state_tables_are_utf8mb4_in_a_latin1_database(tmp_path: Path) -> None:
    with fresh_schema("sbt_latin1") as schema:
        conn = connect()
        with conn.cursor() as cur:
            cur.execute(f"ALTER DATABASE `{schema}` CHARACTER SET latin1 COLLATE latin1_swedish_ci")
        result = upgrade_cli(f"mysql://root@{SHARED_HOST}:{SHARED_PORT}/{schema}", tmp_path)
        assert result.returncode == 0, result.stderr
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_name, table_collation FROM information_schema.tables WHERE table_schema=%s",
                (schema,),
            )
            collations = dict(cur.fetchall())
            cur.execute(
                "SELECT DISTINCT character_set_name FROM information_schema.columns "
                "WHERE table_schema=%s AND character_set_name IS NOT NULL "
                "AND table_name <> 'alembic_version'",
                (schema,),
            )
            column_sets = {row[0] for row in cur.fetchall()}
        conn.close()
        assert {"apply", "task", "apply_log", "control_request"} <= set(collations)
        state_tables = {t: c for t, c in collations.items() if t != "alembic_version"}
        assert all(c.startswith("utf8mb4") for c in state_tables.values()), collations
        assert column_sets == {"utf8mb4"}
        # Text in any language is stored as given.
        from schemabot.storage.database import Database

        db = Database(f"mysql+pymysql://root@{SHARED_HOST}:{SHARED_PORT}/{schema}")
        with db.engine.begin() as c:
            c.exec_driver_sql(
                "INSERT INTO apply_log (apply_id, event, message, created_at) VALUES ('a', 'e', %s, NOW())",
                ("ALTER TABLE t COMMENT '日本語 🚀'",),
            )
            stored = c.exec_driver_sql("SELECT message FROM apply_log").scalar()
            assert stored == "ALTER TABLE t COMMENT '日本語 🚀'"
        db.dispose()
        # Upgrading again is a no-op.
        assert upgrade_cli(f"mysql://root@{SHARED_HOST}:{SHARED_PORT}/{schema}", tmp_path).returncode == 0


def test_postgresql_missing_database_is_one_line(tmp_path: Path) -> None:
    name = f"sbt_missing_{uuid.uuid4().hex[:8]}"
    result = upgrade_cli(f"postgresql://postgres@127.0.0.1:5432/{name}", tmp_path)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "does not exist" in result.stderr and "CREATE DATABASE" in result.stderr


def test_postgresql_transient_errors_are_told_from_verdicts() -> None:
    """A PostgreSQL state database that goes away is retried, never a verdict (§7)."""
    import sqlalchemy as sa

    from schemabot.storage.database import Database, is_transient_state_db_error
    from tests.support.servers import free_port

    dead = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x")
    with pytest.raises(sa.exc.OperationalError) as down:
        dead.connect()
    assert is_transient_state_db_error(down.value)
    db = Database("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", retry_seconds=0.2)
    with pytest.raises(sa.exc.ProgrammingError) as verdict:
        db.run(lambda s: s.execute(sa.text("SELEC 1")))
    assert not is_transient_state_db_error(verdict.value)
    db.dispose()


def _schema_drift(url: str) -> list[object]:
    """What alembic's autogenerate would change to make the migrated database match the models
    (column types included): empty when migrations 0001.. and models.py agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from schemabot.migrate import upgrade
    from schemabot.storage import plans  # noqa: F401  (apply_plan's model joins Base.metadata)
    from schemabot.storage.database import make_engine
    from schemabot.storage.models import Base

    upgrade(database_url=url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_models_match_the_migrations_on_sqlite_mariadb_and_postgresql(tmp_path: Path) -> None:
    """The typed state column (models.StateColumn: a `State` in Python, VARCHAR(32) in the
    database) needs no migration: autogenerate sees no difference on any supported database."""
    from tests.support.postgres import fresh_database, pg_url

    assert _schema_drift(f"sqlite:///{tmp_path / 'state.db'}") == []
    with fresh_schema("sbt_drift") as schema:
        assert _schema_drift(f"mysql+pymysql://root@{SHARED_HOST}:{SHARED_PORT}/{schema}") == []
    with fresh_database("sbt_drift") as database:
        assert _schema_drift(pg_url(database)) == []


def test_a_state_column_reads_back_a_state_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from schemabot.migrate import upgrade
    from schemabot.states import State
    from schemabot.storage.database import make_engine
    from schemabot.storage.models import Apply

    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(database_url=url)
    engine = make_engine(url)
    now = sa.func.current_timestamp()
    row = {"apply_id": "apply-1", "request_hash": "h", "target": "t", "database": "d", "engine": "spirit",
           "options": {}, "attempt": 1, "lease_token": 0, "poll_seq": 0, "created_at": now,
           "updated_at": now}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(Apply).values(**row, state="waiting_for_cutover"))
        assert conn.exec_driver_sql("SELECT state FROM apply").scalar() == "waiting_for_cutover"
        stored = conn.execute(sa.select(Apply.state)).scalar()
        assert stored is State.WAITING_FOR_CUTOVER and not stored.is_terminal
        with pytest.raises(sa.exc.StatementError):
            conn.execute(sa.update(Apply).values(state="half_done"))
    engine.dispose()
