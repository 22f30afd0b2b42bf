"""`_<table>_old` must not exist before a run: cutover renames the source to it, and crash
recovery reads its presence as proof that the rename happened."""

from __future__ import annotations

from engines.spirit.check import CheckContext, Phase, register
from engines.spirit.naming import TableNames


@register("old_table", Phase.PREFLIGHT)
def old_table_absent(ctx: CheckContext) -> str | None:
    if not ctx.uses_copy or not ctx.old_table_exists:
        return None
    old = TableNames(ctx.statement.schema, ctx.statement.table).old
    return f"table {old} exists (left over from an earlier change?); drop or rename it first"
