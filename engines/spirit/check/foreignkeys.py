"""No foreign keys on or to the table: RENAME at cutover would leave child tables pointing at
`_<table>_old`, and constraints on the shadow would have other names and parents."""

from __future__ import annotations

from engines.spirit.check import CheckContext, Phase, register


@register("foreign_keys", Phase.PREFLIGHT)
def no_foreign_keys(ctx: CheckContext) -> str | None:
    if not ctx.uses_copy or not ctx.foreign_keys:
        return None
    return (
        f"the table has or is referenced by foreign keys ({', '.join(ctx.foreign_keys)}); "
        "the spirit engine does not change such tables"
    )
