"""The recovery sweep: the single path by which an apply nobody drives gets a driver again.

Run on Celery beat every `sweep_interval` seconds. Safe to run from several beats at once: every
claim is a compare-and-swap on the fencing token (see `storage.sweep`). A claimed apply gets a
`resume_apply(apply_id, token, 0)` message; if that message is lost too, the claim's lease expires
and the next sweep claims it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from schemabot.errors import StorageUnavailable
from schemabot.runtime import Runtime
from schemabot.storage import sweep
from schemabot.storage.sweep import Claimed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    claimed: list[Claimed] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    storage_error: str | None = None


def recovery_sweep(rt: Runtime) -> SweepReport:
    settings = rt.settings
    try:
        expired = sweep.expire_retryables(
            rt.db, retry_budget=settings.retry_budget, max_age=settings.retry_max_age
        )
        claimed = sweep.claim_orphans(
            rt.db,
            owner=f"sweep@{rt.owner}",
            ttl=settings.lease_ttl,
            start_grace=settings.start_grace,
            retry_budget=settings.retry_budget,
            orphan_limit=settings.orphan_claim_limit,
        )
    except StorageUnavailable as exc:
        log.warning("recovery sweep skipped: %s", exc)
        return SweepReport(storage_error=str(exc))
    for item in claimed:
        if item.reason == "parked":  # nobody drives it until an operator adopts or cancels it
            log.warning("recovery sweep: %s needs attention: its driver keeps dying", item.apply_id)
            continue
        log.info("recovery sweep: %s %s (token %s)", item.reason, item.apply_id, item.token)
        rt.dispatcher.resume_apply(item.apply_id, item.token, 0)
    for apply_id in expired:
        log.warning("recovery sweep: %s failed after its retry budget", apply_id)
    return SweepReport(claimed=claimed, expired=expired)
