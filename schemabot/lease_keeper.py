"""Keeps a driver's lease alive while a single engine call runs.

Ticks heartbeat at their start, but one engine call (an in-place ALTER on a big table, a slow
API) can outlast the lease TTL; without this the sweep would hand a healthy apply to a second
owner. The keeper heartbeats every third of the TTL from a thread of the same process, so a
frozen (SIGSTOP) or killed process stops heartbeating with it, which is what recovery needs.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from schemabot.errors import StorageUnavailable
from schemabot.storage import leases
from schemabot.storage.database import Database

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, db: Database, apply_id: str, token: int, ttl: float) -> None:
        self._db, self._apply_id, self._token, self._ttl = db, apply_id, token, ttl
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{apply_id}", daemon=True)
        self.lost = False

    def _run(self) -> None:
        while not self._stop.wait(self._ttl / 3):
            try:
                if not leases.heartbeat(self._db, self._apply_id, self._token, self._ttl):
                    self.lost = True
                    return
            except StorageUnavailable as exc:
                log.warning("heartbeat of %s failed: %s", self._apply_id, exc)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self._ttl)
