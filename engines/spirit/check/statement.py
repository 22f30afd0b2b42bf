"""Statement forms the engine refuses before touching anything."""

from __future__ import annotations

from engines.spirit.check import CheckContext, Phase, register


@register("statement", Phase.PREFLIGHT)
def supported_statement(ctx: CheckContext) -> str | None:
    if ctx.statement.renames_table:
        return "ALTER TABLE ... RENAME TO is not supported; rename in a separate statement"
    if ctx.statement.kind == "alter" and ctx.source is None:
        return "the table does not exist"
    return None
