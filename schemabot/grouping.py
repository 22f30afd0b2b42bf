"""The one predicate that decides grouped vs sequential dispatch (invariant 4).

Used when the apply is submitted (to create one operation or one per task), at the first
dispatch and at every resume: a Vitess apply, or a MySQL apply with deferred cutover, runs as one
engine operation for all its tables (they must cut over together); anything else runs table by
table. Taking the stored apply's own fields means the answer cannot drift between the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engines.registry import engine_platform


def uses_grouped_apply(
    engine: str, options: Mapping[str, Any], plugins: Mapping[str, str] | None = None
) -> bool:
    return engine_platform(engine, plugins) == "vitess" or bool(options.get("defer_cutover"))
