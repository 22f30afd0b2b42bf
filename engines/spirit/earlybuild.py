"""The deferred secondary indexes built alongside the end of the copy, not after it
(docs/architecture.md §6).

Built after the copy (phase `index`), the build's sort of the whole shadow is time the copy has
already spent: on the bench table (1M rows, one deferred key) 2.1 s of index build after 4.2 s of
copy, one core busy at a time. Started part-way through the copy, on its own connection, the
build sorts the rows copied so far on one server thread while the copy goes on on another; the
rows copied meanwhile reach the new index through InnoDB's online log, applied at the build's
end. Started when the copy left to do takes about as long as the build, both end together.

What it costs: every row copied during the build is logged and applied row by row, which is
what deferring the keys avoided, so the build starts late rather than early; and the log is
bounded (`innodb_online_alter_log_max_size`, per key being built): the start is moved later for
a table whose rows copied during the build would fill half of it (a row's entry estimated from
the widest key's and the primary key's column types). A build that overflows it
anyway fails, and is done again after the copy.

Crash safety needs nothing new in the checkpoint: the shadow's definition says whether the
build happened (deferred.py), in phase `copy` as in phase `index`. A worker that dies with the
build in flight leaves its ALTER to the server, which finishes it or not; the next owner goes on
copying either way, and its own attempt at the build, or the `index` phase after the copy,
waits for the shadow's metadata lock, fails retryably or finds the build done by the
fingerprint. A build that fails here never fails the run: it is said, and left to the `index`
phase, which is the proof of record.

The step that starts the build owns the table until the build ends, copying meanwhile, like a
step of phase `index`: controls wait for that step.

Off by default (`index_build_at` unset: after the copy). On this project's 2-core machine the
overlap gained nothing (bench table, 1M rows, medians of 3: 6.28 s with `auto`, 6.59 s at 0.85,
6.17 s after the copy): the copy, the build, the trailing checksum and the client share two
cores, and the online log's row-by-row apply adds about 1.7 s of server CPU. It is for servers
with cores to spare; measure it there (`bench/online_copy.py --index-build-at auto`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pymysql.connections import Connection
from pymysql.cursors import Cursor

from engines.base import RetryableEngineError
from engines.spirit import runner
from engines.spirit.connection import close_quietly, error_text
from engines.spirit.deferred import Deferred
from engines.spirit.naming import TableNames
from engines.spirit.parallel import PING_SECONDS  # the lanes' keep-alive, the same reason
from engines.spirit.tableinfo import estimated_rows, read_table

BUILD_TO_COPY = 0.5
"""How long building one deferred key takes against the copy of the same table (measured on
the bench table: 2.08 s of build to 4.21 s of copy, 1M rows, MariaDB 10.11)."""

LOG_RECORD_OVERHEAD = 16
"""Bytes of the online log's record header beyond a key's columns and the primary key's."""

_FIXED_BYTES = {
    "tinyint": 1,
    "smallint": 2,
    "mediumint": 3,
    "int": 4,
    "bigint": 8,
    "float": 4,
    "double": 8,
    "date": 3,
    "time": 6,
    "datetime": 8,
    "timestamp": 7,
    "year": 1,
    "bit": 8,
}

def start_share(
    keys: int, rows_total: int, log_max_bytes: int, wanted: float | str | None, row_bytes: int = 128
) -> float:
    """The share of the table copied (0..1) at which the build starts; 1 or more means after
    the copy. `wanted` is the `index_build_at` option: by default (None) 1, after the copy;
    `auto`, when the copy left to do should take about as long as the build:
    1 / (1 + BUILD_TO_COPY * keys). `row_bytes`: what one row copied during the build costs
    the largest key's online log."""
    if wanted is None:
        return 1.0
    share = 1.0 / (1.0 + BUILD_TO_COPY * max(keys, 1)) if wanted == "auto" else float(wanted)
    if rows_total > 0 and log_max_bytes > 0:
        # The rows copied during the build fill half of a key's online log at most.
        fits = (log_max_bytes / 2) / max(row_bytes, 1)
        share = max(share, 1.0 - fits / rows_total)
    return share


def log_row_bytes(cur: Cursor, names: TableNames, deferred: Deferred, primary_key: tuple[str, ...]) -> int:
    """What one row costs the online log of the largest deferred key: its columns and the
    primary key's at their largest (a string at its full width: the safe side), plus a header.
    Each key being built has a log of its own, bounded by innodb_online_alter_log_max_size."""
    cur.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_OCTET_LENGTH, NUMERIC_PRECISION "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (names.schema, names.shadow),
    )
    sizes = {
        str(name).lower(): _column_bytes(str(kind), octets, digits)
        for name, kind, octets, digits in cur.fetchall()
    }
    pk = sum(sizes.get(c.lower(), 64) for c in primary_key)
    widest = max((sum(sizes.get(c.lower(), 64) for c in key) for key in deferred.columns), default=0)
    return widest + pk + LOG_RECORD_OVERHEAD


def _column_bytes(kind: str, octets: object, digits: object) -> int:
    kind = kind.lower()
    if kind in _FIXED_BYTES:
        return _FIXED_BYTES[kind]
    if kind == "decimal":
        return int(str(digits or 10)) // 2 + 1
    if octets is not None:
        return min(int(str(octets)), 3072)  # no index entry is longer than InnoDB's key limit
    return 64


def due(
    cur: Cursor,
    names: TableNames,
    deferred: Deferred,
    primary_key: tuple[str, ...],
    rows_copied: int,
    wanted: float | str | None,
) -> str | None:
    """Why the build starts now (for the event), or None while it is not yet time."""
    rows_total = estimated_rows(cur, names.schema, names.table)
    cur.execute("SELECT @@GLOBAL.innodb_online_alter_log_max_size")
    row = cur.fetchone()
    log_max = int(row[0]) if row and row[0] is not None else 0
    row_bytes = log_row_bytes(cur, names, deferred, primary_key)
    share = start_share(len(deferred.keys), rows_total, log_max, wanted, row_bytes)
    if share >= 1.0 or rows_total <= 0:
        return None
    copied = rows_copied / rows_total
    if copied < share:
        return None
    return f"{min(copied, 1.0):.0%} copied (starts at {share:.0%})"


@dataclass
class Outcome:
    attempts: int = 0
    seconds: float = 0.0
    error: BaseException | None = None


class Builder:
    """The build's ALTER on its own connection, in a thread, while the step copies."""

    def __init__(
        self,
        conn: Connection,
        names: TableNames,
        deferred: Deferred,
        full_fingerprint: str | None,
        sleep: Callable[[float], None],
    ) -> None:
        self.conn, self.names, self.deferred = conn, names, deferred
        self.full_fingerprint, self.sleep = full_fingerprint, sleep
        self.outcome = Outcome()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"index-build-{names.table}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            with self.conn.cursor() as cur:

                def current() -> str | None:
                    info = read_table(cur, self.names.schema, self.names.shadow)
                    return None if info is None else info.fingerprint

                # Through the runner's name, as the `index` phase, so both builds are one code path.
                self.outcome.attempts = runner.build(
                    cur, self.names, self.deferred, current, self.full_fingerprint, self.sleep
                )
                if current() != self.full_fingerprint:
                    raise RetryableEngineError(
                        "the shadow's definition after the build is not the one the ALTER gave"
                    )
        except BaseException as error:  # said by the step; the `index` phase builds instead
            self.outcome.error = error
        finally:
            self.outcome.seconds = time.monotonic() - self._started

    def wait(self, keepalive: Connection, quiet: bool = False) -> Outcome:
        """Wait for the build, then close its connection. The step's lock-holding connection
        is pinged meanwhile so the server never closes it as idle (which would free the table
        while the ALTER runs); a lost one is the step's error once the build has ended, unless
        `quiet` (the step is failing already)."""
        lost: BaseException | None = None
        while self._thread.is_alive():
            self._thread.join(PING_SECONDS)
            if self._thread.is_alive() and lost is None:
                try:
                    keepalive.ping(reconnect=False)
                except BaseException as error:
                    lost = error
        close_quietly(self.conn)
        if lost is not None and not quiet:
            raise RetryableEngineError(f"{self.names.label}: the step lost its connection: {lost}")
        return self.outcome

    def event(self) -> str:
        label, count = self.names.label, len(self.deferred.keys)
        error = self.outcome.error
        if error is None:
            return (
                f"{label}: built {count} deferred index(es) alongside the copy in "
                f"{self.outcome.seconds:.1f}s (attempt {self.outcome.attempts})"
            )
        why = error_text(error)
        return (
            f"{label}: building the deferred indexes alongside the copy failed ({why}); "
            "they are built after the copy"
        )
