"""`engine_options.change_source: binlog` on a server that cannot feed it is refused before
anything is created, with the reason (binlogpos.server_refusal); `auto` then uses triggers."""

from __future__ import annotations

from engines.spirit.check import CheckContext, Phase, register


@register("change_source", Phase.PREFLIGHT)
def binlog_available_when_asked(ctx: CheckContext) -> str | None:
    if not ctx.uses_copy or ctx.change_source != "binlog" or ctx.binlog_refusal is None:
        return None
    return (
        f"engine_options.change_source is binlog, but {ctx.binlog_refusal}; use triggers "
        "(change_source: triggers or auto) or ask an administrator"
    )


def summary(ctx: CheckContext) -> str:
    """Which change source a copy would use, for the plan (the table's own conditions, such as a
    unique key the ALTER adds, are known only once the shadow exists: binlogsource.py)."""
    if ctx.change_source == "triggers":
        return "triggers (engine_options.change_source)"
    if ctx.binlog_refusal is None:
        return (
            "binlog: the server logs full row images and the user may read the stream (triggers "
            "instead if the new table has a unique key the source does not enforce)"
        )
    return f"triggers: {ctx.binlog_refusal}"
