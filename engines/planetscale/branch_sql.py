"""Running DDL on the branch over MySQL, as a person would with `pscale shell`.

The engine asks the API for a short-lived branch password and connects to the host it names;
`USE <keyspace>` then selects the keyspace of that branch (on PlanetScale through vtgate, on the
emulator through its MySQL proxy). Credentials stay in memory for the life of the engine object
and never enter the resume state: a new owner simply asks for a new password.

A DDL's effect is checked with a *fingerprint* of the table (a hash of SHOW CREATE TABLE, or
"absent"): recorded before the statement runs, it tells a new owner whether a DDL whose answer
was lost took effect (fingerprint changed) or must run again (unchanged).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import ssl
from dataclasses import dataclass, field

import pymysql

from engines.base import PermanentEngineError, RetryableEngineError
from engines.mysql.errors import error_code, is_transient
from engines.mysql.tls import open_connection
from engines.planetscale.api import PlanetScaleAPI
from engines.planetscale.budget import Budget
from engines.planetscale.retry import retrying
from engines.targets import redact

ABSENT = "absent"
PASSWORD_TTL_SECONDS = 3600
_AUTO_INCREMENT = re.compile(r"\s+AUTO_INCREMENT=\d+")


@dataclass
class _Credentials:
    host: str
    port: int
    user: str
    password: str = field(repr=False)


def classify(exc: pymysql.MySQLError, what: str) -> Exception:
    """A MySQL error as an engine error: a transient one (engines/mysql/errors.py: the connection
    or the server was busy) or one without a code is retryable; the branch rejecting a DDL is
    permanent. (A password refused while *connecting* is retried with a new one: `connection`.)"""
    code = error_code(exc)
    text = exc.args[1] if len(exc.args) > 1 else str(exc)
    if code is None or is_transient(exc):
        return RetryableEngineError(redact(f"{what}: MySQL connection problem ({code}): {text}"))
    return PermanentEngineError(redact(f"{what}: the branch rejected it ({code}): {text}"))


class BranchSQL:
    def __init__(self, api: PlanetScaleAPI, branch: str, tls: bool) -> None:
        self.api = api
        self.branch = branch
        self.tls = tls
        self._credentials: _Credentials | None = None
        self._conn: pymysql.Connection | None = None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(pymysql.Error):
                self._conn.close()
            self._conn = None

    def _get_credentials(self, budget: Budget) -> _Credentials:
        if self._credentials is None:
            name = f"schemabot-{self.branch}-{secrets.token_hex(3)}"
            body = retrying(
                budget,
                lambda: self.api.create_password(self.branch, name, PASSWORD_TTL_SECONDS, budget),
                f"creating a password for branch {self.branch}",
            )
            host, _, port = str(body["access_host_url"]).rpartition(":")
            if not host:
                host, port = port, "3306"
            self._credentials = _Credentials(
                host, int(port or 3306), str(body["username"]), str(body["plain_text"])
            )
        return self._credentials

    def connection(self, budget: Budget) -> pymysql.Connection:
        if self._conn is not None:
            return self._conn
        creds = self._get_credentials(budget)
        timeout = budget.call_timeout()
        try:
            self._conn = open_connection(
                host=creds.host,
                port=creds.port,
                user=creds.user,
                password=creds.password,
                autocommit=True,
                charset="utf8mb4",
                connect_timeout=timeout,
                read_timeout=timeout,
                write_timeout=timeout,
                ssl=ssl.create_default_context() if self.tls else None,
            )
        except pymysql.MySQLError as exc:
            # A rejected password (expired, emulator restarted) gets a fresh one next time.
            self._credentials = None
            raise RetryableEngineError(
                redact(f"connecting to branch {self.branch}: {exc.args[-1] if exc.args else exc}")
            ) from None
        return self._conn

    def _run(
        self, budget: Budget, keyspace: str, sql: str, what: str
    ) -> tuple[tuple[object, ...], ...]:
        conn = self.connection(budget)
        try:
            with conn.cursor() as cur:
                cur.execute(f"USE `{keyspace}`")
                cur.execute(sql)
                return tuple(cur.fetchall())
        except pymysql.MySQLError as exc:
            error = classify(exc, what)
            if isinstance(error, RetryableEngineError):
                self.close()
            raise error from None

    def fingerprint(self, budget: Budget, keyspace: str, table: str) -> str:
        try:
            rows = self._run(
                budget, keyspace, f"SHOW CREATE TABLE `{table}`", f"reading {keyspace}.{table}"
            )
        except PermanentEngineError as exc:
            if "(1146)" in str(exc):  # table does not exist
                return ABSENT
            raise
        create = _AUTO_INCREMENT.sub("", str(rows[0][1]))
        return hashlib.sha256(create.encode()).hexdigest()

    def run_ddl(self, budget: Budget, keyspace: str, table: str, ddl: str) -> None:
        self._run(budget, keyspace, ddl, f"DDL on {keyspace}.{table}")
