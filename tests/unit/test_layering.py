"""The import direction of docs/architecture.md §1: `tasks -> schemabot -> engines`, never back.

Why a test: the orchestration is testable without a broker only while `schemabot/` stays free of
Celery, and an engine is reusable only while it knows nothing of schemabot's storage or of Celery.
A single stray import undoes either, and nothing else would notice.

The development servers stay outside that line: `planetscale_emulator/` (the PlanetScale API
emulator) and `devservers/` (throwaway Redis/MariaDB servers) are started by the demo, the CLI's
`emulator` command, the benchmarks and the tests, and no engine, task or domain module depends on
them, so a production install never runs their code by accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> top-level modules it must never import
DEV_SERVERS = {"planetscale_emulator", "devservers"}
FORBIDDEN: dict[str, set[str]] = {
    "engines": {"schemabot", "tasks", "celery", "kombu", "sqlalchemy", "alembic"} | DEV_SERVERS,
    "schemabot": {"tasks", "celery", "kombu"} | DEV_SERVERS,
    "tasks": DEV_SERVERS,
    "planetscale_emulator": {"schemabot", "tasks", "celery", "devservers"},
    "devservers": {"schemabot", "engines", "tasks", "planetscale_emulator"},
}

# The one sanctioned crossing: the producer-side publisher builds a bare Celery app to send
# messages (schemabot/messaging.py, inside `producer_dispatcher`), so that the CLI and the HTTP
# API can enqueue without importing the worker's app.
# The demo starts its private servers, and `schemabot emulator` serves the emulator: both are
# development entry points of the CLI, imported lazily by it.
ALLOWED: set[tuple[str, str]] = {
    ("schemabot/messaging.py", "celery"),
    ("schemabot/demo.py", "devservers"),
    ("schemabot/cli.py", "planetscale_emulator"),
}

# The emulator serves the public API the engine talks to, so it must not borrow the engine's
# understanding of it (a shared bug would pass every test): from engines/ it takes only the DSN
# helpers.
EMULATOR_MAY_IMPORT_FROM_ENGINES = {"engines.targets"}


def imported_top_levels(source: str) -> set[str]:
    """Top-level module names imported anywhere in `source` (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def imported_modules(source: str) -> set[str]:
    """Full dotted names of the modules imported anywhere in `source`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for name in sorted(imported_top_levels(path.read_text()) & FORBIDDEN[package]):
            if (rel, name) not in ALLOWED:
                found.append(f"{rel} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    assert violations(package) == []


def test_the_checker_sees_imports_inside_functions() -> None:
    source = "def f():\n    from tasks.celery_app import app\n    import celery.result\n"
    assert imported_top_levels(source) == {"tasks", "celery"}


def test_the_emulator_takes_only_the_dsn_helpers_from_engines() -> None:
    found = []
    for path in sorted((ROOT / "planetscale_emulator").rglob("*.py")):
        for name in sorted(imported_modules(path.read_text())):
            if name.split(".")[0] == "engines" and name not in EMULATOR_MAY_IMPORT_FROM_ENGINES:
                found.append(f"{path.relative_to(ROOT).as_posix()} imports {name}")
    assert found == []
