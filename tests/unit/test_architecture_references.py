"""docs/architecture.md stays the map of the code (issue 15 §5): every test it cites exists,
every scenario test (`test_sN_...`) is in its scenario -> test table (§10), and every `§N`
reference in the code resolves to one of its headings. Parsed with ast and regexes: no pytest
collection, no imports of the code under test."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
CODE_DIRS = ("schemabot", "engines", "tasks")

# `tests/x/test_y.py::test_z` with an optional `::Class` level and `[params]`.
_CITED_TEST = re.compile(r"(tests/[\w/]+\.py)((?:::\w+)+)")
# `§5.3`, `§8 invariant 2`; a `§` right after "issue N" is the issue's own section, not the doc's.
_SECTION_REF = re.compile(r"(issue\s+\d+\s+)?§(\d+(?:\.\d+)?)(?:\s+invariant\s+(\d+))?")
_HEADING = re.compile(r"^#+\s+§(\d+(?:\.\d+)?)(?:\s+invariant\s+(\d+))?", re.MULTILINE)
_SCENARIO_TEST = re.compile(r"^test_s\d+_")


@cache
def _names(path: Path) -> frozenset[str]:
    """Every function and class name defined in a test file, at any depth."""
    tree = ast.parse(path.read_text(), filename=str(path))
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return frozenset(node.name for node in ast.walk(tree) if isinstance(node, kinds))


def _doc() -> str:
    return DOC.read_text()


def test_every_test_the_architecture_cites_exists() -> None:
    cited = _CITED_TEST.findall(_doc())
    assert len(cited) > 50, "the scenario -> test table should be found"
    missing = []
    for path, parts in cited:
        file = ROOT / path
        names = parts.strip(":").split("::")
        if not file.is_file() or not set(names) <= _names(file):
            missing.append(f"{path}{parts}")
    assert missing == []


def test_every_scenario_test_is_in_the_scenario_table() -> None:
    cited = {(path, parts.split("::")[-1]) for path, parts in _CITED_TEST.findall(_doc())}
    uncited = [
        f"{path.relative_to(ROOT)}::{name}"
        for path in sorted((ROOT / "tests").rglob("test_*.py"))
        for name in sorted(_names(path))
        if _SCENARIO_TEST.match(name) and (str(path.relative_to(ROOT)), name) not in cited
    ]
    assert uncited == []


def test_every_section_reference_in_the_code_resolves_to_a_heading() -> None:
    headings = {(number, invariant or None) for number, invariant in _HEADING.findall(_doc())}
    sections = {number for number, _ in headings}
    dangling, checked = [], 0
    for top in CODE_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            for match in _SECTION_REF.finditer(path.read_text()):
                issue, number, invariant = match.groups()
                if issue:
                    continue
                checked += 1
                found = (number, invariant) in headings if invariant else number in sections
                if not found:
                    dangling.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert checked > 50, "the code's references should be found"
    assert dangling == []
