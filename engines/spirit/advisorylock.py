"""GET_LOCK per table: the proof that one process at a time works on a table.

A lock belongs to the connection that took it and vanishes with it, so a SIGKILLed worker never
leaves a table locked. Steps take the locks with timeout 0 (a busy table is reported, never
waited for) and release them at the end of the step, because the next step may run elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymysql.cursors import Cursor


def acquire_all(cur: Cursor, lock_names: Sequence[str], timeout: float = 0) -> bool:
    """Take every lock, in sorted order, or none of them."""
    taken: list[str] = []
    for name in sorted(set(lock_names)):
        cur.execute("SELECT GET_LOCK(%s, %s)", (name, timeout))
        row = cur.fetchone()
        if not row or row[0] != 1:
            release_all(cur, taken)
            return False
        taken.append(name)
    return True


def release_all(cur: Cursor, lock_names: Sequence[str]) -> None:
    for name in sorted(set(lock_names)):
        cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
        cur.fetchall()
