"""The source needs a primary key: chunks, triggers and the checksum all address rows by it."""

from __future__ import annotations

from engines.spirit.check import CheckContext, Phase, register


@register("primary_key", Phase.PREFLIGHT)
def has_primary_key(ctx: CheckContext) -> str | None:
    if not ctx.uses_copy or ctx.source is None or ctx.source.primary_key:
        return None
    return "the table has no primary key; add one first (the online copy addresses rows by it)"
