"""The README's `engine_options` table lists exactly what each engine's model accepts
(engines/options.py), so the documentation cannot drift from the code again: it listed three of
spirit's nine options."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from engines.options import DirectOptions, PlanetScaleOptions, SpiritOptions

README = Path(__file__).resolve().parents[2] / "README.md"
MODELS: dict[str, type[BaseModel]] = {
    "spirit": SpiritOptions,
    "planetscale": PlanetScaleOptions,
    "direct": DirectOptions,
}


def readme_options() -> dict[str, set[str]]:
    """{engine: options} from the rows of the table under the `engine_options` heading."""
    text = README.read_text()
    section = text.split("#### `engine_options`", 1)[1].split("\n\n", 3)
    table = next(part for part in section if part.lstrip().startswith("| engine |"))
    found: dict[str, set[str]] = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        option = re.fullmatch(r"`(\w+)`", cells[1])
        found.setdefault(cells[0], set())
        if option:
            found[cells[0]].add(option.group(1))
        else:
            assert cells[1] == "(none)", line
    return found


@pytest.mark.parametrize("engine", sorted(MODELS))
def test_the_readme_lists_exactly_the_options_each_engine_accepts(engine: str) -> None:
    documented = readme_options()
    assert engine in documented, f"no row for {engine} in the README's engine_options table"
    assert documented[engine] == set(MODELS[engine].model_fields)


def test_every_engine_in_the_readme_table_has_a_model() -> None:
    assert set(readme_options()) == set(MODELS)
