"""The trailing checksum: each copied chunk is compared on a second connection while the next
chunk is copied, while its pages are still in the buffer pool (docs/architecture.md §6).

Only the cheap aggregate runs here (`checksum.same_sums`, one snapshot). A chunk whose sums
agree moves the checksum watermark on, in the transaction of the next copied chunk, so the
checkpoint never claims a comparison that did not happen. The first chunk whose sums differ
stops the trailing: the checksum phase starts from that chunk and judges, repairs and proves it
as before. The last chunk (up to the end of the table) is always left to the checksum phase.

Trailing runs only while it is caught up (the checksum watermark equals the copy watermark when
a step begins), in the first pass; a run resumed behind is checked by the checksum phase from its
watermark. Readiness that must be proved again (a deferred cutover after a restart) is still a
full pass (engine.py, `_reprove`).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from pymysql.connections import Connection

from engines.spirit.checkpoint import Checkpoint
from engines.spirit.checksum import ChunkComparison, same_sums
from engines.spirit.columnmap import ColumnMap
from engines.spirit.keyset import Key, describe, dump_key
from engines.spirit.naming import TableNames


class Trailer:
    def __init__(
        self,
        peer: Connection | None,
        names: TableNames,
        cmap: ColumnMap,
        cp: Checkpoint,
        caught_up: bool | None = None,
    ) -> None:
        """`caught_up`: whether the checksum is level with the copy where this trailer starts
        (a copy lane's own watermarks, lanes.py); by default, the checkpoint's watermarks."""
        self.peer, self.names, self.cmap = peer, names, cmap
        if caught_up is None:
            caught_up = dump_key(cp.checksum_watermark) == dump_key(cp.copy_watermark)
        self.active = peer is not None and cp.checksum_pass == 1 and caught_up
        self.differed: Key | None = None
        self._pool = ThreadPoolExecutor(max_workers=1) if self.active else None
        self._pending: tuple[Future[ChunkComparison | None], Key | None, Key] | None = None

    def submit(self, low: Key | None, high: Key | None) -> None:
        """Compare the committed chunk (low, high] in the background."""
        if not self.active or high is None or self._pool is None:
            return
        assert self._pending is None
        future = self._pool.submit(same_sums, self.peer, self.names, self.cmap, low, high)  # type: ignore[arg-type]
        self._pending = (future, low, high)

    def collect(self, cp: Checkpoint) -> Checkpoint:
        """`cp` with the pending comparison accounted for."""
        agreed = self.take()
        if agreed is None:
            return cp
        high, rows = agreed
        return cp.but(checksum_watermark=high, rows_checksummed=cp.rows_checksummed + rows)

    def take(self) -> tuple[Key, int] | None:
        """The pending comparison, waited for: (its upper key, its source rows) when both sides
        agreed; None when nothing was pending or it differed (the trailing then stops)."""
        if self._pending is None:
            return None
        future, low, high = self._pending
        self._pending = None
        try:
            result = future.result()
        except Exception:
            result = None  # the checksum phase will compare this chunk
        if result is None:
            self.active = False
            self.differed = low if low is not None else ()
            return None
        return high, result.source_rows

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def event(self, label: str) -> str | None:
        if self.differed is None:
            return None
        after = describe(self.differed) if self.differed else "the start"
        return (
            f"{label}: the trailing checksum found the chunk after {after} differing (or could "
            "not read it); the checksum phase judges it"
        )

    def close(self) -> None:
        if self._pending is not None:
            self._pending[0].exception()  # let it finish: the connection is shared
            self._pending = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
