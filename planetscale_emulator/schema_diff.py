"""What a deploy request would change: branch schema compared with main's, table by table.

PlanetScale computes a deploy request's diff declaratively (desired schema vs. current), not
from the statements someone ran on the branch, and so does the emulator: each table whose
normalized definition differs is one change, and each keyspace whose VSchema differs is one
VSchema change. The result (the *plan*) is stored on the deploy request when it leaves
`pending`, and the cutover applies exactly that plan.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

ChangeKind = Literal["create", "alter", "drop"]


@dataclass(frozen=True)
class TablePlan:
    keyspace: str
    table: str
    kind: ChangeKind
    before: str | None  # main's CREATE TABLE (None for a new table)
    after: str | None  # the branch's CREATE TABLE (None for a dropped table)

    @property
    def operation_name(self) -> str:
        return self.kind.upper()

    def ddl(self) -> str:
        """A human-readable statement for the operations endpoint."""
        if self.kind == "drop":
            return f"DROP TABLE `{self.table}`"
        return self.after or ""

    def diff_text(self) -> str:
        """The deploy request diff of this table, as PlanetScale's `raw`: main's definition and
        the branch's, line by line, `-` for a line only main has, `+` for one only the branch has."""
        return line_diff(self.before or "", self.after or "")


@dataclass(frozen=True)
class VSchemaPlan:
    keyspace: str
    before: str
    after: str

    def diff_text(self) -> str:
        """Both documents pretty-printed with sorted keys, diffed line by line."""
        return line_diff(pretty_vschema(self.before), pretty_vschema(self.after))


def pretty_vschema(text: str) -> str:
    try:
        return json.dumps(json.loads(text or "{}"), indent=2, sort_keys=True)
    except json.JSONDecodeError:
        return text


def line_diff(before: str, after: str) -> str:
    """Every line of both texts, prefixed `-` (only before), `+` (only after) or a space (both),
    in order: the shape of PlanetScale's deploy request diff, which `pscale deploy-request diff`
    colours by that first character."""
    old, new = before.splitlines(), after.splitlines()
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if op == "equal":
            out += [" " + line for line in old[i1:i2]]
            continue
        out += ["-" + line for line in old[i1:i2]]
        out += ["+" + line for line in new[j1:j2]]
    return "\n".join(out)


@dataclass(frozen=True)
class Plan:
    tables: tuple[TablePlan, ...]
    vschemas: tuple[VSchemaPlan, ...]

    @property
    def empty(self) -> bool:
        return not self.tables and not self.vschemas

    def to_json(self) -> str:
        return json.dumps(
            {
                "tables": [asdict(t) for t in self.tables],
                "vschemas": [asdict(v) for v in self.vschemas],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> Plan:
        if not text:
            return cls((), ())
        data = json.loads(text)
        return cls(
            tuple(TablePlan(**t) for t in data["tables"]),
            tuple(VSchemaPlan(**v) for v in data["vschemas"]),
        )


def canonical_vschema(text: str) -> str:
    """VSchemas compare as JSON documents, not as text (key order and spacing do not count)."""
    try:
        return json.dumps(json.loads(text or "{}"), sort_keys=True, separators=(",", ":"))
    except json.JSONDecodeError:
        return text


def table_changes(keyspace: str, main: dict[str, str], branch: dict[str, str]) -> list[TablePlan]:
    changes: list[TablePlan] = []
    for table in sorted(set(main) | set(branch)):
        before, after = main.get(table), branch.get(table)
        if before == after:
            continue
        kind: ChangeKind = "create" if before is None else "drop" if after is None else "alter"
        changes.append(TablePlan(keyspace, table, kind, before, after))
    return changes


def compute_plan(
    main_tables: dict[str, dict[str, str]],
    branch_tables: dict[str, dict[str, str]],
    main_vschemas: dict[str, str],
    branch_vschemas: dict[str, str],
) -> Plan:
    """Compare two branches keyspace by keyspace (keyspaces in first-seen order)."""
    tables: list[TablePlan] = []
    for keyspace in branch_tables:
        tables += table_changes(keyspace, main_tables.get(keyspace, {}), branch_tables[keyspace])
    vschemas = [
        VSchemaPlan(ks, main_vschemas.get(ks, "{}"), body)
        for ks, body in branch_vschemas.items()
        if canonical_vschema(body) != canonical_vschema(main_vschemas.get(ks, "{}"))
    ]
    return Plan(tuple(tables), tuple(vschemas))


def _column_lines(create: str) -> tuple[list[str], list[str]]:
    lines = [line.strip().rstrip(",") for line in create.splitlines()[1:-1]]
    columns = [line for line in lines if line.startswith("`")]
    others = [line for line in lines if not line.startswith("`")]
    return columns, others


def instant_eligible(plan: Plan) -> bool:
    """Whether MySQL could run every change of the plan as INSTANT DDL.

    The emulator's rule (a simplification of MySQL's): only ALTERs that append columns at the
    end, leaving every existing column, index and table option unchanged.
    """
    if not plan.tables:
        return False
    for change in plan.tables:
        if change.kind != "alter" or change.before is None or change.after is None:
            return False
        before_cols, before_rest = _column_lines(change.before)
        after_cols, after_rest = _column_lines(change.after)
        if before_rest != after_rest or after_cols[: len(before_cols)] != before_cols:
            return False
        if len(after_cols) <= len(before_cols):
            return False
        if change.before.splitlines()[-1] != change.after.splitlines()[-1]:
            return False
    return True


def plan_summary(plan: Plan) -> dict[str, Any]:
    return {
        "tables": [f"{t.keyspace}.{t.table}:{t.kind}" for t in plan.tables],
        "vschemas": [v.keyspace for v in plan.vschemas],
    }
