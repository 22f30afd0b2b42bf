"""The user must be able to do everything the change needs, checked before anything is created:
a run that fails half-way for a missing privilege leaves a shadow table and triggers behind."""

from __future__ import annotations

from engines.spirit.check import CheckContext, Phase, register
from engines.spirit.check.grants import privileges_on

NEEDED = {
    # the copy: shadow table, triggers, checkpoint and sentinel tables, the rows themselves
    "copy": ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "TRIGGER"),
    "instant": ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER"),
    "create": ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE"),
    "drop": ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP"),
}


@register("privileges", Phase.PREFLIGHT)
def has_privileges(ctx: CheckContext) -> str | None:
    st = ctx.statement
    if not ctx.grants:
        return None  # nothing readable: let the server be the judge
    kind = "copy" if ctx.uses_copy else st.kind if st.kind != "alter" else "instant"
    held = privileges_on(ctx.grants, st.schema, st.table)
    if "*" in held:
        return None
    missing = [p for p in NEEDED[kind] if p not in held]
    if not missing:
        return None
    return f"the user lacks {', '.join(missing)} on {st.schema} (needed for this change)"
