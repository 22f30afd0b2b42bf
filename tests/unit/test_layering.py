"""The import direction of docs/architecture.md §1: `tasks -> schemabot -> engines`, never back.

Why a test: the orchestration is testable without a broker only while `schemabot/` stays free of
Celery, and an engine is reusable only while it knows nothing of schemabot's storage or of Celery.
A single stray import undoes either, and nothing else would notice.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> top-level modules it must never import
FORBIDDEN: dict[str, set[str]] = {
    "engines": {"schemabot", "tasks", "celery", "kombu", "sqlalchemy", "alembic"},
    "schemabot": {"tasks", "celery", "kombu"},
}

# The one sanctioned crossing: the producer-side publisher builds a bare Celery app to send
# messages (schemabot/messaging.py, inside `producer_dispatcher`), so that the CLI and the HTTP
# API can enqueue without importing the worker's app.
ALLOWED: set[tuple[str, str]] = {("schemabot/messaging.py", "celery")}


def imported_top_levels(source: str) -> set[str]:
    """Top-level module names imported anywhere in `source` (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
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
