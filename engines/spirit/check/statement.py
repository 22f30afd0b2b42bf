"""Statement forms the engine refuses before touching anything."""

from __future__ import annotations

from engines.spirit.check import CheckContext, Phase, register
from engines.spirit.statement import RENAME_REFUSAL


@register("statement", Phase.PREFLIGHT)
def supported_statement(ctx: CheckContext) -> str | None:
    if ctx.statement.renames_table:
        return RENAME_REFUSAL
    if ctx.statement.kind == "alter" and ctx.source is None:
        return "the table does not exist"
    return None
