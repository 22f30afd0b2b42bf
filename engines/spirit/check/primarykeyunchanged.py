"""The ALTER must keep the primary key: the shadow is filled and compared by the source's key.

Checked twice: on the statement before anything is created, and on the altered shadow after set-up
(the server's own word, for statements whose effect the parser cannot see).
"""

from __future__ import annotations

from engines.spirit.check import CheckContext, Phase, register

_MESSAGE = (
    "the statement changes the primary key, which the spirit engine does not do online; "
    "use the direct engine or a blocking ALTER"
)


@register("primary_key_statement", Phase.PREFLIGHT)
def statement_keeps_primary_key(ctx: CheckContext) -> str | None:
    return _MESSAGE if ctx.uses_copy and ctx.statement.changes_primary_key else None


@register("primary_key_unchanged", Phase.POST_SETUP)
def shadow_keeps_primary_key(ctx: CheckContext) -> str | None:
    if ctx.source is None or ctx.shadow is None:
        return None
    if ctx.source.primary_key != ctx.shadow.primary_key:
        return _MESSAGE
    return None
