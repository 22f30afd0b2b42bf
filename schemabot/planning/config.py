"""Per-target planning configuration: lint rules disabled for a target, and the copy rate.

Disabled rules (ids like SB103 or names like no-primary-key), from either place:

    SCHEMABOT_LINT_DISABLE_<TARGET>=SB103,foreign-key          environment
    [lint.<target>]                                              SCHEMABOT_TARGETS_FILE (TOML)
    disable = ["SB103", "foreign-key"]

The copy rate that turns a row estimate into a duration is measured from the target's earlier
spirit applies (rows copied / time the tasks spent in `running`, copy_rate.py); without any, it is
DEFAULT_COPY_ROWS_PER_SECOND, about what engines/spirit/README.md measured (1 M rows copied in
14.4 s on 2 cores, a table twice the buffer pool) rounded down.
"""

from __future__ import annotations

import os
import tomllib

from schemabot.settings import Settings

DEFAULT_COPY_ROWS_PER_SECOND = 50_000
LINT_ENV_PREFIX = "SCHEMABOT_LINT_DISABLE_"


def disabled_rules(settings: Settings, target: str) -> list[str]:
    names: list[str] = []
    value = os.environ.get(LINT_ENV_PREFIX + target.upper(), "")
    names += [n.strip() for n in value.split(",") if n.strip()]
    if settings.targets_file is not None:
        with open(settings.targets_file, "rb") as fh:
            data = tomllib.load(fh)
        section = {str(k).lower(): v for k, v in data.get("lint", {}).items()}.get(target.lower(), {})
        names += [str(n) for n in section.get("disable", [])]
    return names
