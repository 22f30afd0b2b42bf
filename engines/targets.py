"""Targets and their DSNs: parsing, and keeping credentials out of every text we produce.

A target is a name plus a DSN. The DSN is the only place credentials live; schemabot stores the
target *name*, and anything that may print a DSN (logs, errors, the CLI) goes through `redact`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from engines.mysql.tls import tls_connect_args

# scheme://user:password@host -> scheme://user:***@host, anywhere in a text. The pattern is
# `[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:[^@\s]*@`; `redact` finds its matches in one linear pass
# (the regex engine took quadratic time on long scheme-like runs: 40k characters, 2 to 6 s).
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_USER_END = re.compile(r"[:/@\s]")
_PASSWORD_END = re.compile(r"[@\s]")


def redact(text: str) -> str:
    """Replace the password part of every URL-shaped DSN in `text` with `***` (linear time)."""
    out: list[str] = []
    last = pos = 0
    stop_from, stop_at = -1, -1  # cache: no '@' or space in [stop_from, stop_at)
    n = len(text)
    while True:
        q = text.find("://", pos)
        if q < 0:
            break
        start = q
        while start > last and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < q and text[start] not in _LETTERS:
            start += 1
        if start == q:
            pos = q + 1
            continue
        user_end = _USER_END.search(text, q + 3)
        if user_end is None or text[user_end.start()] != ":":
            pos = q + 1
            continue
        j = user_end.start()
        if not (stop_from <= j + 1 <= stop_at):
            found = _PASSWORD_END.search(text, j + 1)
            stop_from, stop_at = j + 1, (found.start() if found else n)
        if stop_at >= n or text[stop_at] != "@":
            pos = q + 1
            continue
        out.append(text[last:start])
        out.append(text[start:j])
        out.append(":***@")
        last = pos = stop_at + 1
    out.append(text[last:])
    return "".join(out)


@dataclass(frozen=True)
class Target:
    """A named place to apply schema changes. `repr` never shows the DSN's password."""

    name: str
    dsn: str = field(repr=False)

    @property
    def scheme(self) -> str:
        return urlsplit(self.dsn).scheme

    @property
    def redacted_dsn(self) -> str:
        return redact(self.dsn)

    def __repr__(self) -> str:
        return f"Target(name={self.name!r}, dsn={self.redacted_dsn!r})"


@dataclass(frozen=True)
class MySQLAddress:
    """The parts of a `mysql://user:pass@host:port/schema?opt=v` DSN."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    schema: str | None
    options: dict[str, str] = field(default_factory=dict)

    def connect_kwargs(self) -> dict[str, object]:
        """Keyword arguments for `pymysql.connect` (without a default database)."""
        kwargs: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "charset": "utf8mb4",
            "autocommit": True,
        }
        if "unix_socket" in self.options:
            kwargs["unix_socket"] = self.options["unix_socket"]
        kwargs.update(tls_connect_args(self.options))  # ssl_ca, ssl_cert, ssl_key, ssl_mode
        return kwargs


def parse_mysql_dsn(dsn: str) -> MySQLAddress:
    """Parse `mysql://user:pass@host:port/schema`. Raises ValueError with a redacted message."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise ValueError(f"not a mysql:// DSN: {redact(dsn)}")
    if not parts.hostname:
        raise ValueError(f"the DSN names no host: {redact(dsn)}")
    schema = unquote(parts.path.lstrip("/")) or None
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return MySQLAddress(
        host=parts.hostname,
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        schema=schema,
        options=options,
    )
