"""The table name must leave room for the engine's affixes (`_<table>_new`, `_<table>_old`,
trigger names), which MySQL and MariaDB limit to 64 characters."""

from __future__ import annotations

from engines.spirit.check import CheckContext, Phase, register
from engines.spirit.naming import MAX_TABLE_NAME


@register("table_name", Phase.PREFLIGHT)
def name_fits(ctx: CheckContext) -> str | None:
    if len(ctx.statement.table) <= MAX_TABLE_NAME:
        return None
    return f"the table name is longer than {MAX_TABLE_NAME} characters"
