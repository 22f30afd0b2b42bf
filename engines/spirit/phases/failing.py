"""Phase `failed`: after a permanent failure, record it and leave the table exactly as before."""

from __future__ import annotations

from collections.abc import Sequence

from pymysql.connections import Connection

from engines.base import OperationRequest
from engines.spirit import checkpoint, sentinel, setup
from engines.spirit.checkpoint import Phase
from engines.spirit.connection import target_errors
from engines.spirit.plan import TablePlan


def fail_cleanly(
    conn: Connection, request: OperationRequest, plans: Sequence[TablePlan], why: str
) -> None:
    """After a permanent failure: record it (phase `failed`, a tombstone a late `apply`
    learns from), then remove the triggers, the shadow tables and the sentinel, so the table
    is exactly as before. Never once a rename may have happened (phase `cutover`, `done`).
    A clean-up cut short is finished by the next `apply`, `progress` or `cancel`."""
    with target_errors("cleaning up after a failure"), conn.cursor() as cur:
        cps = {
            p.label: checkpoint.load(cur, p.names.schema, p.names.table, request.context)
            for p in plans
        }
        late = (Phase.CUTOVER, Phase.DONE)
        if any(cp is not None and cp.phase in late for cp in cps.values()):
            return
        for p in plans:
            cp = cps[p.label]
            if cp is not None and cp.phase not in checkpoint.FINISHED:
                cur.execute(
                    f"UPDATE {checkpoint.table_sql(p.names.schema)} SET phase = %s, "
                    "message = %s, updated_at = NOW(6) WHERE table_name = %s AND context = %s",
                    (Phase.FAILED, why[:60000], p.names.table, request.context),
                )
        for p in plans:
            cp = cps[p.label]
            if cp is not None and cp.kind == "copy":
                setup.discard_run(cur, p)
        sentinel.release(cur, {p.names.schema for p in plans}, request.context)
