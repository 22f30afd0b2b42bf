"""Binary log positions: what the server can give, where it stands, and whether a saved position
can still be read.

A position is a (file, offset) pair as `SHOW MASTER STATUS` (MySQL 8.2 and later: `SHOW BINARY
LOG STATUS`) prints it; it is checkpointed as
`file:offset`. Positions compare by the file's sequence number (the digits after the last dot of
`binlog.000042`), then by offset, which is how the server numbers its logs. The engine only ever
saves positions at a transaction boundary (binlogreader.py), so a reader can start there.

The binlog change source needs, on the server: `log_bin=ON`, `binlog_format=ROW` and
`binlog_row_image=FULL` (every event names the row's primary key, before and after), and, for
the user: REPLICATION SLAVE (to receive the stream) and REPLICATION CLIENT or BINLOG MONITOR (to
read the position; MariaDB 10.5 renamed the privilege).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pymysql.cursors import Cursor

from engines.spirit.check.grants import privileges_on


@dataclass(frozen=True, order=False)
class Position:
    file: str
    offset: int

    @property
    def _order(self) -> tuple[str, int, int]:
        stem, _, number = self.file.rpartition(".")
        return (stem, int(number) if number.isdigit() else 0, self.offset)

    def __lt__(self, other: Position) -> bool:
        return self._order < other._order

    def __le__(self, other: Position) -> bool:
        return self._order <= other._order

    def __gt__(self, other: Position) -> bool:
        return self._order > other._order

    def __ge__(self, other: Position) -> bool:
        return self._order >= other._order

    def dump(self) -> str:
        return f"{self.file}:{self.offset}"

    @staticmethod
    def load(text: str | None) -> Position | None:
        if not text:
            return None
        file, _, offset = text.rpartition(":")
        return Position(file, int(offset))

    def __str__(self) -> str:
        return self.dump()


def status_statement(server_version: str) -> str:
    """The statement that gives the binary log's end on this server: MySQL 8.2 renamed
    `SHOW MASTER STATUS` to `SHOW BINARY LOG STATUS` and 8.4 removed the old name; MariaDB
    (every version) and older MySQL know only the old one."""
    if "mariadb" in server_version.lower():
        return "SHOW MASTER STATUS"
    numbers = [int(part) for part in re.findall(r"\d+", server_version)[:2]]
    major, minor = [*numbers, 0, 0][:2]
    return "SHOW BINARY LOG STATUS" if (major, minor) >= (8, 2) else "SHOW MASTER STATUS"


def current(cur: Cursor) -> Position:
    """Where the server's binary log ends now (every committed transaction is before it)."""
    version = getattr(cur.connection, "server_version", "") or ""
    statement = status_statement(version if isinstance(version, str) else version.decode())
    cur.execute(statement)
    row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"the server has no binary log ({statement} is empty)")
    return Position(str(row[0]), int(row[1]))


def logs(cur: Cursor) -> list[tuple[str, int]]:
    """(file, size) of the binary logs the server still has, oldest first."""
    cur.execute("SHOW BINARY LOGS")
    return [(str(r[0]), int(r[1])) for r in cur.fetchall()]


def purged_reason(cur: Cursor, position: Position) -> str | None:
    """None when `position` can still be read; else why not (the file was purged)."""
    present = logs(cur)
    if any(name == position.file for name, _ in present):
        return None
    oldest = present[0][0] if present else "none"
    return (
        f"binlog position {position} was purged from the server (oldest binary log now: "
        f"{oldest}); the changes made since then cannot be read"
    )


SETTINGS = ("log_bin", "binlog_format", "binlog_row_image")


def read_settings(cur: Cursor) -> dict[str, str]:
    """The server's binary logging settings, upper-cased (1/0 read as ON/OFF)."""
    cur.execute("SELECT " + ", ".join(f"@@GLOBAL.{v}" for v in SETTINGS))
    row = cur.fetchone() or ()
    found = {}
    for name, value in zip(SETTINGS, row, strict=False):
        text = str(value).upper()
        found[name] = {"1": "ON", "0": "OFF"}.get(text, text)
    return found


def server_refusal(settings: dict[str, str], grants: Iterable[str]) -> str | None:
    """Why the binlog change source cannot run on this server for this user (None: it can)."""
    wanted = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL"}
    wrong = [f"{k}={settings.get(k, '?')} (needs {v})" for k, v in wanted.items()
             if settings.get(k) != v]
    if wrong:
        return "the server's " + ", ".join(wrong)
    held = privileges_on(list(grants), "*")
    if "*" in held or "SUPER" in held:
        return None
    missing = []
    if "REPLICATION SLAVE" not in held and "REPLICATION REPLICA" not in held:
        missing.append("REPLICATION SLAVE")
    if not held & {"REPLICATION CLIENT", "BINLOG MONITOR", "SLAVE MONITOR"}:
        missing.append("REPLICATION CLIENT (BINLOG MONITOR on MariaDB)")
    if missing:
        return f"the user lacks {' and '.join(missing)} ON *.*"
    return None

