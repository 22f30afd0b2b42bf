"""The emulator's metadata in MariaDB, so that it survives the emulator's own restart.

Everything the API shows (branches, deploy requests, passwords, VSchemas, the emulated clock,
fault rules, events) lives in `<prefix>__meta`; the emulator process keeps nothing in memory
that it could not rebuild from there. One connection serves the whole process: every call goes
through `Store.lock`, which the service also holds around each API action, so actions never
interleave (the emulator favours being obviously correct over being fast).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import pymysql
import pymysql.cursors

from planetscale_emulator.config import EmulatorConfig

Row = dict[str, Any]

_TABLES = (
    """CREATE TABLE IF NOT EXISTS settings (
        k VARCHAR(64) PRIMARY KEY,
        v TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS branches (
        id BIGINT AUTO_INCREMENT PRIMARY KEY,
        public_id VARCHAR(32) NOT NULL,
        name VARCHAR(64) NOT NULL UNIQUE,
        parent_branch VARCHAR(64) NULL,
        production TINYINT NOT NULL DEFAULT 0,
        ready TINYINT NOT NULL DEFAULT 0,
        created_at DOUBLE NOT NULL,
        updated_at DOUBLE NOT NULL,
        schema_refreshed_at DOUBLE NULL
    )""",
    """CREATE TABLE IF NOT EXISTS vschemas (
        branch_id BIGINT NOT NULL,
        keyspace VARCHAR(64) NOT NULL,
        body MEDIUMTEXT NOT NULL,
        PRIMARY KEY (branch_id, keyspace)
    )""",
    """CREATE TABLE IF NOT EXISTS passwords (
        id VARCHAR(32) PRIMARY KEY,
        branch_id BIGINT NOT NULL,
        name VARCHAR(128) NOT NULL,
        username VARCHAR(64) NOT NULL UNIQUE,
        plain_text VARCHAR(128) NOT NULL,
        role VARCHAR(32) NOT NULL,
        created_at DOUBLE NOT NULL,
        expires_at DOUBLE NULL
    )""",
    """CREATE TABLE IF NOT EXISTS deploy_requests (
        number BIGINT AUTO_INCREMENT PRIMARY KEY,
        public_id VARCHAR(32) NOT NULL,
        branch VARCHAR(64) NOT NULL,
        into_branch VARCHAR(64) NOT NULL,
        state VARCHAR(16) NOT NULL,
        deployment_state VARCHAR(32) NOT NULL,
        notes TEXT NOT NULL,
        auto_cutover TINYINT NOT NULL,
        auto_delete_branch TINYINT NOT NULL DEFAULT 0,
        instant_ddl TINYINT NOT NULL DEFAULT 0,
        instant_ddl_eligible TINYINT NOT NULL DEFAULT 0,
        throttle_ratio INT NOT NULL DEFAULT 0,
        plan MEDIUMTEXT NULL,
        operations MEDIUMTEXT NULL,
        error_message TEXT NULL,
        created_at DOUBLE NOT NULL,
        updated_at DOUBLE NOT NULL,
        queued_at DOUBLE NULL,
        started_at DOUBLE NULL,
        ready_to_cutover_at DOUBLE NULL,
        cutover_at DOUBLE NULL,
        deployed_at DOUBLE NULL,
        finished_at DOUBLE NULL,
        closed_at DOUBLE NULL,
        revert_expires_at DOUBLE NULL,
        INDEX (branch, into_branch)
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        id BIGINT AUTO_INCREMENT PRIMARY KEY,
        at DOUBLE NOT NULL,
        kind VARCHAR(64) NOT NULL,
        subject VARCHAR(128) NOT NULL,
        detail TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS faults (
        id BIGINT AUTO_INCREMENT PRIMARY KEY,
        kind VARCHAR(32) NOT NULL,
        method VARCHAR(8) NULL,
        path_pattern VARCHAR(255) NULL,
        number BIGINT NULL,
        deploy_state VARCHAR(32) NULL,
        status INT NULL,
        code VARCHAR(32) NULL,
        message TEXT NULL,
        delay_ms INT NULL,
        remaining INT NOT NULL,
        created_at DOUBLE NOT NULL
    )""",
)


class Store:
    """One serialized MariaDB connection to the emulator's metadata schema."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self._conn: pymysql.Connection | None = None

    # -- connection -------------------------------------------------------------------------

    def _connection(self) -> pymysql.Connection:
        if self._conn is None:
            address = self.config.mysql
            self._conn = pymysql.connect(
                host=address.host,
                port=address.port,
                user=address.user,
                password=address.password,
                unix_socket=address.options.get("unix_socket"),
                charset="utf8mb4",
                autocommit=True,
                connect_timeout=5,
                cursorclass=pymysql.cursors.DictCursor,
            )
        else:
            # The server may have closed an idle connection; reconnect transparently.
            self._conn.ping(reconnect=True)
        return self._conn

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                with contextlib.suppress(pymysql.Error):
                    self._conn.close()
                self._conn = None

    def bootstrap(self) -> None:
        """Create the metadata schema and tables when missing (idempotent)."""
        with self.lock:
            meta = self.config.meta_schema
            self.execute(f"CREATE DATABASE IF NOT EXISTS `{meta}` CHARACTER SET utf8mb4")
            for ddl in _TABLES:
                self.execute(ddl)

    # -- statements -------------------------------------------------------------------------

    def _use_meta(self, conn: pymysql.Connection) -> None:
        if conn.db != self.config.meta_schema.encode():
            try:
                conn.select_db(self.config.meta_schema)
            except pymysql.err.OperationalError:
                # The metadata schema does not exist yet: only bootstrap's CREATE DATABASE runs.
                return

    def execute(self, sql: str, args: Sequence[Any] | None = None) -> int:
        """Run one statement; return the last insert id (or the affected row count)."""
        with self.lock:
            conn = self._connection()
            self._use_meta(conn)
            with conn.cursor() as cur:
                affected = cur.execute(sql, args)
                return int(cur.lastrowid or affected or 0)

    def execute_in(self, schema: str, sql: str, args: Sequence[Any] | None = None) -> None:
        """Run one statement with `schema` as the default database (DDL copied verbatim from
        SHOW CREATE TABLE names its table unqualified)."""
        with self.lock:
            conn = self._connection()
            conn.select_db(schema)
            try:
                with conn.cursor() as cur:
                    cur.execute("SET SESSION foreign_key_checks = 0")
                    try:
                        cur.execute(sql, args)
                    finally:
                        cur.execute("SET SESSION foreign_key_checks = 1")
            finally:
                self._use_meta(conn)

    def rowcount(self, sql: str, args: Sequence[Any] | None = None) -> int:
        with self.lock:
            conn = self._connection()
            self._use_meta(conn)
            with conn.cursor() as cur:
                return int(cur.execute(sql, args))

    def query(self, sql: str, args: Sequence[Any] | None = None) -> list[Row]:
        with self.lock:
            conn = self._connection()
            self._use_meta(conn)
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cast(list[Row], list(cur.fetchall()))

    def one(self, sql: str, args: Sequence[Any] | None = None) -> Row | None:
        rows = self.query(sql, args)
        return rows[0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group metadata writes so a crash never leaves half of them behind."""
        with self.lock:
            conn = self._connection()
            self._use_meta(conn)
            conn.begin()
            try:
                yield
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    # -- settings and events ----------------------------------------------------------------

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        row = self.one("SELECT v FROM settings WHERE k=%s", (key,))
        return default if row is None else str(row["v"])

    def set_setting(self, key: str, value: str) -> None:
        self.execute(
            "INSERT INTO settings (k, v) VALUES (%s, %s) ON DUPLICATE KEY UPDATE v=VALUES(v)",
            (key, value),
        )

    def add_event(self, kind: str, subject: str, at: float, **detail: Any) -> None:
        """Append to the audit trail tests read to count what really happened."""
        self.execute(
            "INSERT INTO events (at, kind, subject, detail) VALUES (%s, %s, %s, %s)",
            (at, kind, subject, json.dumps(detail, sort_keys=True, default=str)),
        )

    def events(self, since_id: int = 0, kind: str | None = None) -> list[Row]:
        sql = "SELECT id, at, kind, subject, detail FROM events WHERE id > %s"
        args: list[Any] = [since_id]
        if kind:
            sql += " AND kind = %s"
            args.append(kind)
        rows = self.query(sql + " ORDER BY id", args)
        for row in rows:
            row["detail"] = json.loads(row["detail"])
        return rows


def wall_time() -> float:
    return time.time()
