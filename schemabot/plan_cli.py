"""`schemabot plan`: what an apply would do, without doing it (issue 13).

    schemabot plan --target NAME [--namespace NS] (--ddl SQL ... | --schema-dir DIR)
                   [--engine auto|direct|spirit|planetscale] [--allow-unsafe] [--json]
    schemabot plan show APPLY_ID [--json]      the plan stored on an apply

Exit codes: 0 the plan is clean (warnings allowed); 3 it has blocking findings; 2 bad input;
1 the provider of a Vitess target did not answer or refused (schemabot.errors.ProviderError):
no plan was made, which is neither clean nor blocked.

For a Vitess target the plan is the diff of a deploy request opened from a plan branch and never
deployed (schemabot/planning/vitess.py); `vschema.json` files in the schema directory are part of
it and of `apply --schema-dir`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from schemabot.errors import ValidationError

if TYPE_CHECKING:
    from schemabot.planning.planner import Plan

# The planner (sqlglot, the engines) and the settings are imported by the commands that run,
# not here: schemabot/cli.py registers `plan` at import, and `schemabot --help` should not pay
# for them (issue 15 §4).

BLOCKED = 3


class _Exit(click.exceptions.Exit):
    pass


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def render(plan: dict[str, Any]) -> str:
    """The plan document as a person reads it."""
    lines = [
        f"plan v{plan['version']} for target {plan['target']} ({plan['platform']}, engine {plan['engine']}): "
        f"{len(plan['statements'])} statement(s), planned in {plan['elapsed_seconds']:.2f} s"
    ]
    rate = plan["copy_rate"]
    for st in plan["statements"]:
        how = st["algorithm"] or "-"
        rows = f"~{st['rows_estimate']} rows" if st["rows_estimate"] is not None else ""
        eta = f", copy ~{st['duration_seconds']} s" if st["duration_seconds"] is not None else ""
        name = f"{st['namespace']}.{st['table']}"
        if st["algorithm"] is None and st["rows_estimate"] is None:  # Vitess: no rehearsal, no rows
            lines.append(f"  {name}  {st['action']} -> {st['engine']}")
        else:
            lines.append(f"  {name}  {st['action']}  {how} -> {st['engine']}  {rows}{eta}")
        lines.append(f"      why: {st['engine_reason']}")
        for ddl_line in st["ddl"].split("\n"):
            lines.append(f"      {ddl_line}")
        failed = [p for p in st["preflight"] if p["verdict"] == "fail"]
        if st["preflight"]:
            passed = len(st["preflight"]) - len(failed)
            lines.append(f"      preflight: {passed} passed, {len(failed)} failed")
        for f in st["findings"]:
            lines.append("      " + _finding(f))
        if st.get("diff"):
            lines.append("      deploy request diff:")
            lines += [f"        {line}" for line in st["diff"].split("\n")]
    vitess = plan.get("vitess")
    if vitess:
        for change in vitess["vschemas"]:
            lines.append(f"  {change['namespace']}  VSchema")
            lines += [f"        {line}" for line in change["diff"].split("\n")]
    for f in plan["findings"]:
        lines.append("  " + _finding(f))
    if vitess:
        dr = vitess["deploy_request"]
        branch = vitess["branch"] + (" (reused)" if vitess["branch_reused"] else "")
        lines.append(
            f"plan branch {branch}; deploy request #{dr['number']} ({dr['state']}, not deployed)"
            + (f": {dr['url']}" if dr["url"] else "")
        )
    else:
        lines.append(f"copy rate: {rate['rows_per_second']:.0f} rows/s ({rate['source']})")
    if plan["blocking"]:
        lines.append("BLOCKED: fix the errors above (destructive changes need --allow-unsafe)")
    else:
        lines.append("clean: nothing blocks this plan")
    return "\n".join(lines)


def _finding(f: dict[str, Any]) -> str:
    note = " (allowed by --allow-unsafe)" if f["allowed"] else ""
    return f"{f['severity']:<7} {f['rule']} {f['name']}: {f['message']}{note}"


def _emit(plan: Plan | dict[str, Any], as_json: bool) -> None:
    from schemabot.planning.planner import Plan

    doc = plan.to_dict() if isinstance(plan, Plan) else plan
    if as_json:
        _print_json(doc)
    else:
        click.echo(render(doc))


@click.group(name="plan", invoke_without_command=True)
@click.option("--target", default=None, help="Target name (SCHEMABOT_TARGET_<NAME>).")
@click.option("--namespace", default=None, help="Schema or keyspace (default: the target DSN's schema).")
@click.option("--ddl", "ddls", multiple=True, help="One statement; repeat for more.")
@click.option(
    "--schema-dir",
    default=None,
    help="Directory of CREATE TABLE files (one per table); Vitess: vschema.json per keyspace.",
)
@click.option("--engine", default="auto", show_default=True, help="auto, direct, spirit or planetscale.")
@click.option("--allow-unsafe", is_flag=True, help="Let destructive changes through (and drop tables).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan document as JSON.")
@click.pass_context
def plan(
    ctx: click.Context,
    target: str | None,
    namespace: str | None,
    ddls: tuple[str, ...],
    schema_dir: str | None,
    engine: str,
    allow_unsafe: bool,
    as_json: bool,
) -> None:
    """Show what an apply would do, how, how long, and what is risky; change nothing."""
    if ctx.invoked_subcommand is not None:
        return
    from schemabot.cli import handles_errors
    from schemabot.planning.service import make_plan
    from schemabot.settings import get_settings

    @handles_errors
    def run() -> None:
        if not target:
            raise ValidationError("--target is required")
        if bool(ddls) == bool(schema_dir):
            raise ValidationError("give either --ddl statements or --schema-dir, not both and not neither")
        result = make_plan(
            get_settings(),
            target,
            namespace=namespace,
            ddl=list(ddls),
            schema_dir=schema_dir,
            engine=engine,
            allow_unsafe=allow_unsafe,
        )
        _emit(result, as_json)
        raise _Exit(BLOCKED if result.blocking else 0)

    run()


@plan.command(name="show")
@click.argument("apply_id")
@click.option("--json", "as_json", is_flag=True)
def show(apply_id: str, as_json: bool) -> None:
    """The plan stored on an apply submitted with --schema-dir or --engine auto."""
    from schemabot.cli import handles_errors
    from schemabot.planning.service import stored_plan
    from schemabot.settings import get_settings

    @handles_errors
    def run() -> None:
        _emit(stored_plan(get_settings(), apply_id), as_json)

    run()


def submit_from_plan(
    client: Any,
    target: str,
    engine: str,
    namespace: str | None,
    ddls: list[str],
    schema_dir: str | None,
    allow_unsafe: bool,
    requested_by: str | None,
    **options: Any,
) -> Any:
    """`apply --engine auto` / `apply --schema-dir`: plan, print a blocked plan and exit 3, or
    submit what the plan says. Returns the submit result (apply_id, created)."""
    from schemabot.planning.service import PlanBlocked, submit_planned

    try:
        submitted = submit_planned(
            client,
            target,
            engine=engine,
            namespace=namespace,
            ddl=ddls or None,
            schema_dir=schema_dir,
            allow_unsafe=allow_unsafe,
            requested_by=requested_by,
            **options,
        )
    except PlanBlocked as exc:
        click.echo(render(exc.plan.to_dict()), err=True)
        raise _Exit(BLOCKED) from None
    return submitted


def status_lines(client: Any, apply_id: str) -> list[str]:
    """For `schemabot status`: the engine the plan chose for each table and why (none when the
    apply was not submitted from a plan, or the state database has no plan table yet)."""
    from schemabot.storage.plans import load_plan

    try:
        plan = load_plan(client.runtime.db, apply_id)
    except Exception:  # status must work without the plan table (an older state database)
        return []
    if not plan:
        return []
    lines = [f"  plan: submitted with {plan.get('submitted_engine')} ({plan.get('submitted_engine_reason')})"]
    for st in plan.get("statements", []):
        lines.append(
            f"    {st['namespace']}.{st['table']}: {st['algorithm'] or st['action']} -> {st['engine']} "
            f"({st['engine_reason']})"
        )
    return lines
