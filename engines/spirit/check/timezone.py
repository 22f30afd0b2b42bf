"""A column converted between DATETIME and TIMESTAMP is refused.

The server converts between the two in the session's time zone. The blocking ALTER (and the
engine's copy) convert in one session's zone, but the triggers run in each application
session's: rows written during the change by sessions in +05:00 and -03:00 would land hours apart
from what the blocking ALTER gives. Triggers cannot reproduce the conversion faithfully for every
zone (named zones, DST gaps and overlaps), so the change is refused: run it with a blocking ALTER,
or convert in two steps through a new column the application fills.
"""

from __future__ import annotations

from engines.spirit.check import CheckContext, Phase, register
from engines.spirit.columnmap import map_columns


def _base(column_type: str) -> str:
    return column_type.split("(")[0].strip().lower()


@register("time_zone_conversion", Phase.POST_SETUP)
def no_zone_dependent_conversion(ctx: CheckContext) -> str | None:
    if ctx.source is None or ctx.shadow is None:
        return None
    st = ctx.statement
    cmap = map_columns(ctx.source, ctx.shadow, st.renames, st.dropped)
    converted = []
    for old, new in cmap.pairs:
        before, after = ctx.source.column(old), ctx.shadow.column(new)
        if before is None or after is None:
            continue
        kinds = {_base(before.column_type), _base(after.column_type)}
        if kinds == {"datetime", "timestamp"}:
            converted.append(f"{old} ({before.column_type} to {after.column_type})")
    if not converted:
        return None
    return (
        "converting between DATETIME and TIMESTAMP depends on each writer's session time zone, "
        "which the triggers cannot reproduce, so it is refused: " + ", ".join(converted)
    )
