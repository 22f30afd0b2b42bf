"""Running the state database's Alembic migrations from the installed package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from schemabot.settings import get_settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    url = database_url or get_settings().database_url
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(revision: str = "head", database_url: str | None = None) -> None:
    command.upgrade(alembic_config(database_url), revision)


# MySQL/MariaDB error numbers `db upgrade` explains in one line, with what to do.
_UNKNOWN_DATABASE = 1049
_ACCESS_DENIED = {1044, 1045, 1698}
_UNREACHABLE = {2002, 2003, 2005, 2006, 2013}


def explain(exc: BaseException, database_url: str) -> str | None:
    """One line for a state-database error a person can fix (None: not one we recognise).

    Never includes the password: the URL is shown redacted.
    """
    import sqlite3

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from engines.targets import redact

    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    try:
        url = make_url(database_url)
    except sa.exc.ArgumentError:
        return None
    postgresql = url.get_backend_name() == "postgresql"
    where = f"{url.host or 'localhost'}:{url.port or (5432 if postgresql else 3306)}"
    shown = redact(database_url)
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        return (
            f"cannot open the SQLite state database {url.database!r} ({orig}): does its directory exist "
            "and is it writable? (SCHEMABOT_DATABASE_URL)"
        )
    code = orig.args[0] if orig is not None and orig.args and isinstance(orig.args[0], int) else None
    if code == _UNKNOWN_DATABASE:
        return (
            f"the state database {url.database!r} does not exist on {where}: create it "
            f"(CREATE DATABASE `{url.database}` CHARACTER SET utf8mb4) and run `schemabot db upgrade` "
            f"again, or fix SCHEMABOT_DATABASE_URL ({shown})"
        )
    if code in _ACCESS_DENIED:
        return (
            f"access denied for user {url.username!r} to the state database on {where}: check the user "
            f"and password in SCHEMABOT_DATABASE_URL ({shown}) and the user's grants"
        )
    if code in _UNREACHABLE:
        return (
            f"cannot reach the state database at {where}: is the server running and reachable? "
            f"(SCHEMABOT_DATABASE_URL={shown})"
        )
    first = (str(orig).splitlines() or [""])[0] if orig is not None else type(exc).__name__
    if postgresql and f'database "{url.database}" does not exist' in first:
        return (
            f"the state database {url.database!r} does not exist on {where}: create it "
            f"(CREATE DATABASE \"{url.database}\" ENCODING 'UTF8') and run `schemabot db upgrade` again, "
            f"or fix SCHEMABOT_DATABASE_URL ({shown})"
        )
    if postgresql and ("password authentication failed" in first or "role " in first):
        return (
            f"access denied for user {url.username!r} to the state database on {where}: check the user "
            f"and password in SCHEMABOT_DATABASE_URL ({shown}) and the user's grants"
        )
    if postgresql and "connection refused" in first.lower():
        return (
            f"cannot reach the state database at {where}: is the server running and reachable? "
            f"(SCHEMABOT_DATABASE_URL={shown})"
        )
    return f"the state database at {where} refused the upgrade: {redact(first)} ({shown})"
