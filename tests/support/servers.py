"""Throwaway servers for tests (the implementation is shared with `make demo`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

from devservers.servers import MariaDBServer, RedisServer, free_port, wait_for

__all__ = [
    "TEST_REDIS_DB",
    "BinlogMariaDB",
    "MariaDBServer",
    "RedisServer",
    "free_port",
    "replicated_pair",
    "wait_for",
]


def _redis_db_of_this_process() -> int:
    """The machine's Redis database for this test process's broker messages: 14 alone, and one
    of its own per pytest-xdist worker (gw0 14, gw1 13, ...). Queues are private to each test
    already; a database per process also keeps Celery's broadcast (pidbox) and event traffic,
    which every worker on a database shares, from reaching another process's workers."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    return 14 - index % 12  # databases 3..14; 0..2 are left to a developer's own use


TEST_REDIS_DB = _redis_db_of_this_process()


class BinlogMariaDB(MariaDBServer):
    """A private `mariadbd` with binary logging (row format, full images) and a server id, so
    it can be a replication primary or replica (docs/architecture.md §6, throttling)."""

    def __init__(self, workdir: Path, server_id: int, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.server_id = server_id

    def server_options(self) -> list[str]:
        return [
            # Grants are on (the engine's preflight reads them): root has no password.
            "--innodb-buffer-pool-size=32M",
            f"--server-id={self.server_id}",
            f"--log-bin={self.workdir / 'binlog'}",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            f"--relay-log={self.workdir / 'relay'}",
        ]

    def start(self) -> BinlogMariaDB:
        super().start()
        return self

    def query(self, sql: str) -> list[dict[str, Any]]:
        conn = pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            autocommit=True,
            cursorclass=pymysql.cursors.DictCursor,
        )
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.close()


@contextmanager
def replicated_pair(workdir: Path) -> Iterator[tuple[BinlogMariaDB, BinlogMariaDB]]:
    """A primary and a replica replicating from it (binlog file and position), both private."""
    primary = BinlogMariaDB(workdir / "primary", 1).start()
    replica = None
    try:
        replica = BinlogMariaDB(workdir / "replica", 2).start()
        status = primary.query("SHOW MASTER STATUS")[0]
        replica.execute(
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, "
            f"MASTER_USER='root', MASTER_LOG_FILE='{status['File']}', "
            f"MASTER_LOG_POS={int(status['Position'])}"
        )
        replica.execute("START SLAVE")
        wait_for(
            lambda: replica.query("SHOW SLAVE STATUS")[0]["Slave_IO_Running"] == "Yes",
            30,
            "the replica to connect",
        )
        yield primary, replica
    finally:
        for server in (replica, primary):
            if server is not None:
                server.kill()
