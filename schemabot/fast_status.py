"""The `schemabot` command's entry point, with quick paths for `schemabot status APPLY_ID`,
`schemabot list` and `schemabot log APPLY_ID` (no options).

A read answers in a fraction of the full CLI's start-up (issue 15 §4; bench/cli_latency.py): the
quick path reads the state database with the standard library's sqlite3 (read-only, never
creating a file) or pymysql, without importing SQLAlchemy, pydantic or Celery, and prints the
same text (schemabot/status_text.py). Anything it does not handle, or any doubt at all (another
URL scheme, TLS options, an unknown apply, missing tables, an error), falls through to the full
CLI, which answers as always.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_URL = "sqlite:///./schemabot.db"  # schemabot.settings.Settings.database_url
_APPLY_COLUMNS = ("apply_id", "state", "engine", "target", "attempt", "error", "attention", "resume_outcome")
_APPLY = f"SELECT {', '.join(_APPLY_COLUMNS)} FROM apply WHERE apply_id = {{p}}"
# Left to the full CLI: a queued apply (it says where in the line) and one submitted from a plan
# (it shows the plan's engine choices).
_NEEDS_FULL_CLI = (
    "SELECT (SELECT COUNT(*) FROM table_claim_queue WHERE apply_id = {p})"
    " + (SELECT COUNT(*) FROM apply_plan WHERE apply_id = {p})"
)
_TASK_COLUMNS = (
    "namespace",
    "table_name",
    "action",
    "state",
    "percent",
    "rows_copied",
    "rows_total",
    "engine",
    "engine_reason",
    "message",
)
_TASKS = f"SELECT {', '.join(_TASK_COLUMNS)} FROM task WHERE apply_id = {{p}} ORDER BY seq"
_LIST_LIMIT = 50  # `schemabot list`'s default --limit
_LIST = (
    "SELECT apply_id, state, engine, target, created_at, attention FROM apply"
    f" ORDER BY id DESC LIMIT {_LIST_LIMIT}"
)
_EXISTS = "SELECT COUNT(*) FROM apply WHERE apply_id = {p}"
_LOG_LIMIT = 1000  # storage/audit.py:entries
_LOG = (
    "SELECT created_at, event, message, old_state, new_state FROM apply_log"
    f" WHERE apply_id = {{p}} ORDER BY id LIMIT {_LOG_LIMIT}"
)


def database_url() -> str:
    """SCHEMABOT_DATABASE_URL as Settings reads it: the environment (any case), then ./.env."""
    for key, value in os.environ.items():
        if key.upper() == "SCHEMABOT_DATABASE_URL":
            return value
    if os.path.exists(".env"):
        from dotenv import dotenv_values

        for name, found in dotenv_values(".env").items():
            if name.upper() == "SCHEMABOT_DATABASE_URL" and found:
                return found
    return DEFAULT_URL


def _connect(url: str) -> tuple[Any, str] | None:
    """A DB-API connection and its parameter style, or None for anything not handled here."""
    if "?" in url:
        return None
    if url.startswith("sqlite:///"):
        import sqlite3

        path = url[len("sqlite:///") :]
        if not path or path == ":memory:" or not os.path.exists(path):
            return None
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5), "?"
    if url.startswith("mysql+pymysql://"):
        from engines.mysql.tls import open_connection

        parts = urlsplit(url)
        conn = open_connection(
            host=parts.hostname or "localhost",
            port=parts.port or 3306,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=unquote(parts.path.lstrip("/")) or None,
            connect_timeout=5,
            read_timeout=15,
            charset="utf8mb4",
        )
        return conn, "%s"
    return None


def _iso(value: Any) -> str | None:
    """A timestamp as the full CLI prints it (`api._iso`: isoformat with a space). sqlite3 hands
    back SQLAlchemy's stored text, pymysql a datetime; both become the same datetime first."""
    if not value:
        return None
    from datetime import datetime

    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.isoformat(sep=" ")


def _records(cur: Any, names: tuple[str, ...], timestamp: str) -> list[SimpleNamespace]:
    """The cursor's rows as records named `names`, the `timestamp` field printed as the full CLI
    prints it."""
    rows = [SimpleNamespace(**dict(zip(names, r, strict=True))) for r in cur.fetchall()]
    for row in rows:
        setattr(row, timestamp, _iso(getattr(row, timestamp)))
    return rows


def _read(query: Any) -> Any:
    """Run `query(cursor, paramstyle)` on the state database; None on any doubt."""
    try:
        found = _connect(database_url())
        if found is None:
            return None
        conn, p = found
        try:
            return query(conn.cursor(), p)
        finally:
            conn.close()
    except Exception:
        return None


def quick_list() -> str | None:
    """The text of `schemabot list` (no options), or None to let the full CLI answer."""

    def query(cur: Any, p: str) -> list[SimpleNamespace]:
        cur.execute(_LIST)
        names = ("apply_id", "state", "engine", "target", "created_at", "attention")
        return _records(cur, names, "created_at")

    applies = _read(query)
    if applies is None:
        return None
    from schemabot.status_text import list_lines

    return "".join(line + "\n" for a in applies for line in list_lines(a))


def quick_log(apply_id: str) -> str | None:
    """The text of `schemabot log APPLY_ID` (no options), or None to let the full CLI answer."""

    def query(cur: Any, p: str) -> list[SimpleNamespace] | None:
        cur.execute(_EXISTS.format(p=p), (apply_id,))
        if not cur.fetchone()[0]:
            return None  # the full CLI says "no apply" and exits 2
        cur.execute(_LOG.format(p=p), (apply_id,))
        return _records(cur, ("at", "event", "message", "old_state", "new_state"), "at")

    entries = _read(query)
    if entries is None:
        return None
    from schemabot.status_text import log_line

    return "".join(log_line(e) + "\n" for e in entries)


def _quick(args: list[str]) -> str | None:
    """The text of a read the quick paths answer, or None for the full CLI."""
    if len(args) == 2 and not args[1].startswith("-"):
        if args[0] == "status":
            return quick_status(args[1])
        if args[0] == "log":
            return quick_log(args[1])
    if args == ["list"]:
        return quick_list()
    return None


def quick_status(apply_id: str) -> str | None:
    """The text of `schemabot status APPLY_ID`, or None to let the full CLI answer."""
    try:
        found = _connect(database_url())
        if found is None:
            return None
        conn, p = found
        try:
            cur = conn.cursor()
            cur.execute(_APPLY.format(p=p), (apply_id,))
            row = cur.fetchone()
            if row is None:
                return None
            apply = SimpleNamespace(**dict(zip(_APPLY_COLUMNS, row, strict=True)))
            cur.execute(_NEEDS_FULL_CLI.format(p=p), (apply_id, apply_id))
            if cur.fetchone()[0]:
                return None
            cur.execute(_TASKS.format(p=p), (apply_id,))
            names = tuple("table" if c == "table_name" else c for c in _TASK_COLUMNS)
            tasks = [SimpleNamespace(**dict(zip(names, r, strict=True))) for r in cur.fetchall()]
        finally:
            conn.close()
    except Exception:
        return None
    from schemabot.status_text import render

    return render(apply, tasks)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = _quick(args)
    if text is not None:
        sys.stdout.write(text)
        return 0
    from schemabot.cli import main as full

    return full(args)


if __name__ == "__main__":
    sys.exit(main())
