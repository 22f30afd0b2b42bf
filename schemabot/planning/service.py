"""Plans for the CLI and the HTTP API, and applies submitted from a plan (issue 13).
A planned apply is an ordinary apply: submitted, stored and driven as docs/architecture.md §5 says.

`make_plan` reads the per-target configuration (disabled lint rules) and the measured copy rate.
`submit_planned` plans, refuses a blocked plan, submits what the plan says as one apply (with
`--engine auto`, each table on the engine the plan chose for it, with the reason), stores the
plan on it, and records an `--allow-unsafe` override (and who asked) in the apply's audit log.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from schemabot.engine_mix import MIXED
from schemabot.errors import NotFound, SchemabotError, ValidationError
from schemabot.planning.config import disabled_rules
from schemabot.planning.copy_rate import copy_rate
from schemabot.planning.planner import Plan, PlannedStatement, Planner
from schemabot.settings import Settings
from schemabot.storage import audit
from schemabot.storage.database import Database, get_database
from schemabot.storage.models import Apply
from schemabot.storage.plans import load_plan, store_plan


class PlanBlocked(SchemabotError):
    """The plan has blocking findings; nothing was submitted. Carries the plan."""

    def __init__(self, plan: Plan) -> None:
        blocking = [f for f in plan.all_findings if f.blocking]
        super().__init__(
            "the plan is blocked: " + "; ".join(f"{f.rule} {f.name}: {f.message}" for f in blocking)
        )
        self.plan = plan


def _state_db(settings: Settings) -> Database | None:
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        return None  # no history yet; do not create the file as a side effect of planning
    try:
        return get_database(settings.database_url, settings.storage_retry_seconds)
    except Exception:  # a plan does not need the state database; only the measured rate does
        return None


def make_plan(
    settings: Settings,
    target: str,
    *,
    namespace: str | None = None,
    ddl: list[str] | None = None,
    schema_dir: str | None = None,
    engine: str = "auto",
    allow_unsafe: bool = False,
    db: Database | None = None,
) -> Plan:
    try:
        target_obj = settings.target(target)
    except LookupError as exc:
        raise ValidationError(str(exc)) from None
    planner = Planner(
        target_obj,
        engine=engine,
        allow_unsafe=allow_unsafe,
        disabled_rules=disabled_rules(settings, target),
        copy_rate=copy_rate(db if db is not None else _state_db(settings), target),
    )
    if schema_dir:
        return planner.plan_schema_dir(schema_dir, namespace)
    return planner.plan_ddl(ddl or [], namespace)


def stored_plan(settings: Settings, apply_id: str, db: Database | None = None) -> dict[str, Any]:
    database = db or get_database(settings.database_url, settings.storage_retry_seconds)
    plan = load_plan(database, apply_id)
    if plan is None:
        raise NotFound(f"no plan is stored for {apply_id} (not submitted from a plan, or no such apply)")
    return plan


def engine_choices(statements: list[PlannedStatement]) -> list[tuple[str, str]]:
    """(engine, why) per planned statement, in the order given: what `--engine auto` submits.
    Statements on one MySQL target that need different engines run in one mixed apply
    (schemabot/engine_mix.py)."""
    missing = [f"{s.namespace}.{s.table}" for s in statements if not s.engine]
    if missing:
        raise ValidationError(f"the plan chose no engine for {', '.join(missing)}")
    return [(str(s.engine), s.engine_reason or "chosen by the plan") for s in statements]


def submitted_engine(choices: list[tuple[str, str]]) -> tuple[str, str]:
    """The apply's engine for these choices and why: one engine for every statement, or `auto`
    (a mixed apply: each task runs on its own engine)."""
    engines = list(dict.fromkeys(e for e, _ in choices))
    if len(engines) == 1:
        return engines[0], f"every statement: {engines[0]}"
    counts = ", ".join(f"{sum(1 for c, _ in choices if c == e)} on {e}" for e in engines)
    return MIXED, f"per table ({counts}): each task runs on the engine the plan chose for it"


@dataclass(frozen=True)
class PlannedSubmit:
    apply_id: str
    created: bool
    engine: str
    plan: Plan | None  # None for a repeat of an idempotent submit (see `stored_plan`)


def _apply_with_key(db: Database, key: str) -> str | None:
    return db.run(
        lambda session: session.scalar(sa.select(Apply.apply_id).where(Apply.idempotency_key == key)),
        write=False,
    )


def submit_planned(
    client: Any,
    target: str,
    *,
    engine: str = "auto",
    namespace: str | None = None,
    ddl: list[str] | None = None,
    schema_dir: str | None = None,
    allow_unsafe: bool = False,
    requested_by: str | None = None,
    **submit_options: Any,
) -> PlannedSubmit:
    """Plan, then submit what the plan says as one apply (client: schemabot.api.Client)."""
    from schemabot.api import ChangeSet

    key = submit_options.get("idempotency_key")
    existing = _apply_with_key(client.runtime.db, key) if key else None
    if existing is not None:  # a retried submit: the same apply, not a new plan of what is left
        stored = load_plan(client.runtime.db, existing)
        if stored is None:
            raise ValidationError(f"idempotency key {key!r} was already used by {existing} without a plan")
        return PlannedSubmit(existing, False, str(stored.get("submitted_engine")), None)
    plan = make_plan(
        client.settings,
        target,
        namespace=namespace,
        ddl=ddl,
        schema_dir=schema_dir,
        engine=engine,
        allow_unsafe=allow_unsafe,
        db=client.runtime.db,
    )
    if plan.blocking:
        raise PlanBlocked(plan)
    vschemas = plan.vschemas  # Vitess: each keyspace's desired VSchema, submitted with its DDL
    if not plan.statements and not vschemas:
        raise ValidationError("the plan has nothing to do: the target already matches")
    by_namespace: dict[str, list[PlannedStatement]] = {}
    for st in plan.statements:
        by_namespace.setdefault(st.namespace, []).append(st)
    for ns in vschemas:
        by_namespace.setdefault(ns, [])
    ordered = [st for statements in by_namespace.values() for st in statements]  # as submitted
    changes = [
        ChangeSet(ddl=[st.ddl for st in statements], namespace=ns or None, vschema=vschemas.get(ns))
        for ns, statements in by_namespace.items()
    ]
    auto = engine == "auto" and plan.platform != "vitess"
    choices = engine_choices(ordered) if auto else None
    if choices:
        chosen, why = submitted_engine(choices)
    elif engine == "auto":
        chosen, why = "planetscale", "Vitess target: branch and deploy request"
    else:
        chosen, why = engine, "asked for"
    who = requested_by or _current_user()
    result = client.submit_apply(
        target, MIXED if auto else chosen, changes, requested_by=who, engine_choices=choices, **submit_options
    )
    document = {**plan.to_dict(), "submitted_engine": chosen, "submitted_engine_reason": why}
    if result.created:
        store_plan(client.runtime.db, result.apply_id, document, who)
        unsafe = [f for f in plan.unsafe if f.allowed]
        if unsafe:
            listed = "; ".join(f"{f.rule} {f.name}: {f.message}" for f in unsafe)
            message = f"--allow-unsafe by {who}: {listed}"
            detail = {"requested_by": who, "findings": [f.to_dict() for f in unsafe]}
            apply_id = result.apply_id
            client.runtime.db.run(
                lambda session: audit.append(session, apply_id, "unsafe_allowed", message, detail=detail)
            )
    return PlannedSubmit(result.apply_id, result.created, chosen, plan)


def _current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container): say so rather than guess
        return "unknown"
