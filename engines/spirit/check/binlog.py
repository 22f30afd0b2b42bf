"""With binary logging on, creating triggers needs SUPER or log_bin_trust_function_creators=ON
(MariaDB 10.11 answers error 1419 otherwise). Say so before anything is created."""

from __future__ import annotations

from engines.spirit.check import CheckContext, Phase, register
from engines.spirit.check.grants import has_global_privilege


@register("binlog_trigger_creation", Phase.PREFLIGHT)
def can_create_triggers_with_binlog(ctx: CheckContext) -> str | None:
    if not ctx.uses_copy or ctx.variables.get("log_bin", "OFF") != "ON":
        return None
    if ctx.binlog_possible:
        return None  # no trigger is created: the binlog change source carries the changes
    if ctx.variables.get("log_bin_trust_function_creators", "OFF") == "ON":
        return None
    if has_global_privilege(ctx.grants, "SUPER"):
        return None
    return (
        "binary logging is on, and creating triggers then needs SUPER or "
        "log_bin_trust_function_creators=ON; ask an administrator to set one of them"
    )
