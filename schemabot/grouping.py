"""The one predicate that decides grouped vs sequential dispatch (docs/architecture.md §8 invariant 4).

Used when the apply is submitted (to create one operation or one per task), at the first
dispatch and at every resume: a Vitess apply, a MySQL apply with deferred cutover, or a MySQL
apply the user (or the default) made `atomic`, runs as one engine operation for all its tables
(they cut over together, in one RENAME); anything else runs table by table. Taking the stored
apply's own fields means the answer cannot drift between the two.

`atomic` is decided once, at submission, and stored in the options: asked for explicitly
(`--atomic` / `--no-atomic`, the API's `atomic`), or by default for an engine that cuts several
tables over in one statement (spirit) when every table of the apply is on one schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engines.registry import engine_platform

# Engines whose grouped operation cuts every table over in one atomic RENAME on one server.
ATOMIC_BY_DEFAULT: frozenset[str] = frozenset({"spirit"})


def default_atomic(engine: str, namespaces: Iterable[str]) -> bool:
    """Atomic unless asked otherwise: for spirit, when every table is on one schema."""
    return engine in ATOMIC_BY_DEFAULT and len(set(namespaces)) == 1


def uses_grouped_apply(
    engine: str, options: Mapping[str, Any], plugins: Mapping[str, str] | None = None
) -> bool:
    return (
        engine_platform(engine, plugins) == "vitess"
        or bool(options.get("defer_cutover"))
        or bool(options.get("atomic"))
    )
