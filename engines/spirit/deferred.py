"""Deferred secondary indexes: the shadow is filled without its non-unique secondary indexes,
which are built once, online, when the copy is done (docs/architecture.md §6).

Maintaining a secondary index row by row during the copy costs a large share of the copy's
server time; building it in one sorted pass afterwards (`ALGORITHM=INPLACE, LOCK=NONE`, writes
keep flowing through the change source) is far cheaper. Only plain `KEY` lines are deferred: the
primary key and unique keys stay (the change capture and the copy's duplicate handling rely on
them), and nothing is deferred on a table with a FULLTEXT or SPATIAL index or for a key over a
generated column (their online builds have limits of their own).

Crash safety needs no flag: the checkpoint records the key lines and both fingerprints of the
shadow, the *lean* one (without the keys) and the *full* one (`shadow_fingerprint`, the
definition the ALTER gave). The shadow's definition itself says whether the build happened:
lean means not yet, full means done (a build that finished after its worker died included),
anything else is a shadow altered out of band. The keys are dropped and added back in their
order in one statement each, so `SHOW CREATE TABLE` ends exactly as the ALTER made it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import pymysql
from pymysql.cursors import Cursor

from engines.base import PermanentEngineError, RetryableEngineError
from engines.spirit.connection import error_text, is_permanent
from engines.spirit.naming import TableNames, quote
from engines.spirit.tableinfo import TableInfo

# Metadata lock wait of one build attempt (seconds): while the build waits for the shadow's
# exclusive lock, the application's writes (whose change capture writes the shadow) queue behind
# it, so the wait is short and retried, like the cutover's.
BUILD_LOCK_WAIT_SECONDS = 1
BUILD_ATTEMPTS = 5

_KEY_LINE = re.compile(r"^\s*KEY `((?:[^`]|``)+)` \((.*)\)(.*?),?$")


@dataclass(frozen=True)
class Deferred:
    keys: tuple[str, ...]
    """The `KEY ...` lines of the shadow's definition, in order, as `SHOW CREATE TABLE` gives."""

    lean_fingerprint: str
    """The shadow's fingerprint without them."""

    def dump(self) -> str:
        return json.dumps({"keys": list(self.keys), "lean": self.lean_fingerprint})

    @staticmethod
    def load(text: str | None) -> Deferred | None:
        if not text:
            return None
        data = json.loads(text)
        return Deferred(tuple(data["keys"]), str(data["lean"]))

    @property
    def columns(self) -> list[list[str]]:
        """Each key's column names, in order (a prefix length is not kept)."""
        columns = []
        for line in self.keys:
            match = _KEY_LINE.match(line)
            assert match is not None
            columns.append([p.replace("``", "`") for p in re.findall(r"`((?:[^`]|``)+)`", match[2])])
        return columns

    @property
    def names(self) -> list[str]:
        names = []
        for line in self.keys:
            match = _KEY_LINE.match(line)
            assert match is not None
            names.append(match[1].replace("``", "`"))
        return names


def deferrable_keys(shadow: TableInfo) -> tuple[str, ...]:
    """The shadow's non-unique secondary key lines that may be built after the copy."""
    lines = [line.strip().rstrip(",") for line in shadow.create_sql.splitlines()]
    if any(line.startswith(("FULLTEXT KEY", "SPATIAL KEY")) for line in lines):
        return ()
    generated = {c.name.lower() for c in shadow.columns if c.generated}
    keys = []
    for line in lines:
        match = _KEY_LINE.match(line)
        if match is None:
            continue
        parts = {p.lower() for p in re.findall(r"`((?:[^`]|``)+)`", match[2])}
        if parts & generated:
            continue
        keys.append(line)
    return tuple(keys)


def drop_keys(cur: Cursor, names: TableNames, deferred: Deferred) -> None:
    """On the empty shadow, at set-up."""
    drops = ", ".join(f"DROP INDEX {quote(n)}" for n in deferred.names)
    cur.execute(f"ALTER TABLE {names.q(names.shadow)} {drops}")


def build(
    cur: Cursor,
    names: TableNames,
    deferred: Deferred,
    current_fingerprint: Callable[[], str | None],
    full_fingerprint: str | None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Add the deferred keys online. Returns the attempts it took. A lock wait is retried a few
    times; then the step fails retryably and the next step tries again. A build that already
    happened (its worker died after the server finished it) is recognised by the fingerprint."""
    adds = ", ".join(f"ADD {line}" for line in deferred.keys)
    cur.execute("SELECT @@SESSION.lock_wait_timeout")
    row = cur.fetchone()
    saved = int(row[0]) if row else 31536000
    cur.execute(f"SET SESSION lock_wait_timeout = {BUILD_LOCK_WAIT_SECONDS}")
    try:
        for attempt in range(1, BUILD_ATTEMPTS + 1):
            try:
                cur.execute(f"ALTER TABLE {names.q(names.shadow)} {adds}, ALGORITHM=INPLACE, LOCK=NONE")
                return attempt
            except pymysql.MySQLError as error:
                if error.args and error.args[0] == 1061 and current_fingerprint() == full_fingerprint:
                    return attempt  # built by a run that died before recording it
                if is_permanent(error):
                    raise PermanentEngineError(
                        f"{names.label}: building the deferred indexes: {error_text(error)}"
                    ) from error
                if attempt == BUILD_ATTEMPTS:
                    raise RetryableEngineError(
                        f"{names.label}: building the deferred indexes: {error_text(error)}"
                    ) from error
                sleep(0.2 * attempt)
    finally:
        cur.execute(f"SET SESSION lock_wait_timeout = {saved}")
    return BUILD_ATTEMPTS
