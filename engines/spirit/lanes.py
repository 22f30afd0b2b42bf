"""Copy lanes: how many, over which key ranges, and how far each has gone.

Several lanes copy disjoint ranges of the primary key at the same time, each on its own
connection, which lets the server use more than one core for the copy (its `INSERT ... SELECT`
is single-threaded, like its own copying ALTER). They are worth it only where nothing serialises
them: under `innodb_autoinc_lock_mode` 0 or 1 (1 is MariaDB's default, and not changeable at run
time) an `INSERT ... SELECT` into a table with an AUTO_INCREMENT column holds the table's AUTO-INC
lock for the whole statement, so two lanes take turns and are slower than one (issue 12 measured
that; without the column two lanes were 1.57x faster). So: one lane when the shadow has an
AUTO_INCREMENT column and the lock mode is below 2, when the key is not one integer column (lane
bounds are compared in Python, which must agree with the server's order: integers do, strings
under a collation need not), when the table is small; otherwise `copy_lanes` (default `AUTO_LANES`).

The plan is chosen once, at the first copy step of a run, and kept in the checkpoint's
`copy_lanes` column; every lane's copy watermark and checksum watermark is written in the same
transaction as the chunk that moves it, so a worker killed at any instant leaves each lane's
watermark saying exactly which of its rows are in the shadow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from pymysql.cursors import Cursor

from engines.spirit.chunker import is_integer_key
from engines.spirit.keyset import Key
from engines.spirit.naming import quote
from engines.spirit.tableinfo import TableInfo

AUTO_LANES = 2
"""Lanes by default where they apply. Two: each lane keeps one server thread busy, and the
server does the work (this process waits on sockets); measured in engines/spirit/README.md."""
MAX_LANES = 16
AUTO_MIN_ROWS_PER_LANE = 50_000
"""`auto` gives no lane fewer rows than this (threads and connections cost more than they win
on a small table)."""

_AUTO_INCREMENT_COLUMN = re.compile(r"\bAUTO_INCREMENT\b(?!=)", re.IGNORECASE)


@dataclass(frozen=True)
class Lane:
    """Keys in (start, end]; None is an open end (the last lane also copies rows inserted beyond
    the maximum key while it runs). `copied`/`summed`: the copy's and the trailing checksum's
    watermarks within the lane (None: nothing yet)."""

    start: int | None
    end: int | None
    copied: int | None = None
    copy_done: bool = False
    summed: int | None = None
    sum_done: bool = False
    size: int = 1000

    @property
    def copy_low(self) -> Key | None:
        return _key(self.copied if self.copied is not None else self.start)

    @property
    def sum_low(self) -> Key | None:
        return _key(self.summed if self.summed is not None else self.start)

    @property
    def caught_up(self) -> bool:
        """The checksum is level with the copy in this lane (trailing may go on)."""
        return self.summed == self.copied

    def cap(self, boundary: Key | None) -> tuple[Key | None, bool]:
        """The chunk's upper key, kept inside the lane, and whether it is the lane's last."""
        if self.end is None:
            return boundary, boundary is None
        if boundary is None or int(boundary[0]) >= self.end:
            return (self.end,), True
        return boundary, False


def _key(value: int | None) -> Key | None:
    return None if value is None else (value,)


@dataclass(frozen=True)
class LanePlan:
    """The lanes chosen for a run (`count` 1: the single-lane copy on the checkpoint's own
    watermarks, `lanes` empty) and the reason, shown in progress."""

    count: int
    why: str
    lanes: tuple[Lane, ...] = ()

    @property
    def parallel(self) -> bool:
        return len(self.lanes) > 1

    def but_lane(self, index: int, **changes: Any) -> LanePlan:
        lanes = list(self.lanes)
        lanes[index] = replace(lanes[index], **changes)
        return replace(self, lanes=tuple(lanes))

    def dump(self) -> str:
        return json.dumps(
            {
                "count": self.count,
                "why": self.why,
                "lanes": [asdict(lane) for lane in self.lanes],
            }
        )

    @staticmethod
    def load(text: str | None) -> LanePlan | None:
        if not text:
            return None
        raw = json.loads(text)
        return LanePlan(
            int(raw["count"]), str(raw["why"]), tuple(Lane(**lane) for lane in raw["lanes"])
        )

    def describe(self) -> str:
        """For progress: '2 copy lanes' and, while copying, where each lane is."""
        if not self.parallel:
            return f"1 copy lane ({self.why})"
        marks = []
        for lane in self.lanes:
            at = "done" if lane.copy_done else lane.copied if lane.copied is not None else "start"
            marks.append(str(at))
        return f"{self.count} copy lanes ({self.why}), at {', '.join(marks)}"


def forget_checksum(text: str | None) -> str | None:
    """The lane plan with every lane's checksum undone (readiness proved again from scratch)."""
    plan = LanePlan.load(text)
    if plan is None:
        return text
    cleared = tuple(replace(lane, summed=None, sum_done=False) for lane in plan.lanes)
    return replace(plan, lanes=cleared).dump()


def autoinc_lock_serialises(cur: Cursor, shadow: TableInfo) -> int | None:
    """The server's `innodb_autoinc_lock_mode` when it makes lanes take turns on the shadow's
    AUTO-INC lock (the shadow has an AUTO_INCREMENT column and the mode is below 2), else None."""
    if not _AUTO_INCREMENT_COLUMN.search(shadow.create_sql):
        return None
    cur.execute("SELECT @@GLOBAL.innodb_autoinc_lock_mode")
    row = cur.fetchone()
    mode = int(row[0]) if row and row[0] is not None else 1
    return mode if mode < 2 else None


def choose(
    cur: Cursor,
    source: TableInfo,
    shadow: TableInfo,
    key: Sequence[str],
    wanted: int | str | None,
    estimated_rows: int,
) -> tuple[int, str]:
    """How many lanes, and why (the `copy_lanes` option: a number, or 'auto'/None)."""
    columns = [source.column(name) for name in key]
    types = [column.column_type if column is not None else "" for column in columns]
    if not is_integer_key(types):
        return 1, "the primary key is not one integer column"
    mode = autoinc_lock_serialises(cur, shadow)
    if mode is not None:
        return 1, (
            f"AUTO_INCREMENT column and innodb_autoinc_lock_mode={mode}: lanes would take "
            "turns on the table's AUTO-INC lock"
        )
    if isinstance(wanted, int):
        count = max(1, min(wanted, MAX_LANES))
        return count, "copy_lanes" if count > 1 else "copy_lanes=1"
    count = max(1, min(AUTO_LANES, estimated_rows // AUTO_MIN_ROWS_PER_LANE))
    if count == 1:
        return 1, "auto: a small table"
    return count, "auto: no AUTO-INC lock to share"


def split(cur: Cursor, table_sql: str, column: str, count: int, size: int) -> tuple[Lane, ...]:
    """`count` lanes over the key span as it is now, of equal width (empty: no rows, or fewer
    keys than lanes)."""
    cur.execute(f"SELECT MIN({quote(column)}), MAX({quote(column)}) FROM {table_sql}")
    row = cur.fetchone()
    if row is None or row[0] is None:
        return ()
    low, high = int(row[0]) - 1, int(row[1])
    width = (high - low) // count
    if width < 1:
        return ()
    bounds = [low + width * i for i in range(1, count)]
    starts: list[int | None] = [None, *bounds]
    ends: list[int | None] = [*bounds, None]
    return tuple(Lane(s, e, size=size) for s, e in zip(starts, ends, strict=True))
