"""How fast `mysql-replication` (python-mysql-replication) reads MariaDB's row events: the
question a binlog change source must answer first (docs/architecture.md §6).

    .venv/bin/pip install mysql-replication   # not a dependency of schemabot (yet)
    .venv/bin/python bench/binlog_read.py [--rows 200000]

Starts a private `mariadbd` with `binlog_format=ROW`, full row images (tests/support/servers.py),
writes `--rows` rows of the bench's shape in one statement, then `--rows` single-row updates in
batches, and times reading every row event back through the library.
"""

# ruff: noqa: E402  (the import path is fixed before the imports)
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script: import the repository's packages from its root, not from bench/.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import tempfile
import time

from tests.support.servers import BinlogMariaDB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    from pymysqlreplication import BinLogStreamReader  # type: ignore[import-not-found]
    from pymysqlreplication.row_event import (  # type: ignore[import-not-found]
        UpdateRowsEvent,
        WriteRowsEvent,
    )

    with tempfile.TemporaryDirectory(prefix="sb-binlog-read-") as tmp:
        server = BinlogMariaDB(Path(tmp), 1).start()
        try:
            version = server.query("SELECT VERSION() AS v")[0]["v"]
            start = server.query("SHOW MASTER STATUS")[0]
            server.execute("CREATE DATABASE b")
            server.execute(
                "CREATE TABLE b.t (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
                "k INT UNSIGNED NOT NULL, c CHAR(120) NOT NULL, pad CHAR(60) NOT NULL, KEY (k))"
            )
            t0 = time.monotonic()
            server.execute(
                f"INSERT INTO b.t (k, c, pad) SELECT seq, REPEAT(MD5(seq), 3), LEFT(MD5(seq), 60)"
                f" FROM b.seq_1_to_{args.rows}"
            )
            server.execute("UPDATE b.t SET k = k + 1")
            wrote = time.monotonic() - t0
            stream = BinLogStreamReader(
                connection_settings={"host": "127.0.0.1", "port": server.port, "user": "root", "passwd": ""},
                server_id=4242,
                log_file=start["File"],
                log_pos=int(start["Position"]),
                resume_stream=True,
                # blocking=False loops forever on MariaDB 10.11: the server ends a non-blocking
                # dump by closing the connection, which the library takes for a lost one.
                blocking=True,
                only_events=[WriteRowsEvent, UpdateRowsEvent],
                is_mariadb=True,
            )
            t0 = time.monotonic()
            rows = 0
            for event in stream:
                rows += len(event.rows)
                if rows >= 2 * args.rows:
                    break
            read = time.monotonic() - t0
            stream.close()
        finally:
            server.kill()
    print(
        f"{version}: server wrote {rows} row events in {wrote:.2f}s; mysql-replication read "
        f"them in {read:.2f}s = {rows / read:,.0f} row events/s (single thread)"
    )
    return 0 if rows == 2 * args.rows else 1


if __name__ == "__main__":
    sys.exit(main())
