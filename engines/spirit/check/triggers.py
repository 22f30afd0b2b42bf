"""The source must have no triggers of its own: the engine adds its three, and an existing
trigger (pt-online-schema-change's, an application's) could write rows the copy does not see."""

from __future__ import annotations

from engines.spirit.check import CheckContext, Phase, register


@register("triggers", Phase.PREFLIGHT)
def no_existing_triggers(ctx: CheckContext) -> str | None:
    if not ctx.uses_copy or not ctx.triggers:
        return None
    return (
        f"the table has triggers ({', '.join(sorted(ctx.triggers))}); drop them or use another "
        "engine (is another online schema change running?)"
    )
