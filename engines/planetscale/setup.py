"""The set-up steps, from branch to deploy: each one idempotent, each one resumable.

A step either moves the resume state to the next phase (returns None: go on) or says why it
must wait (returns `Waiting`). Non-idempotent calls follow one pattern: look for the effect,
record the intent, call, record the result. After an answer that never came (or a crash right
after the call) the next attempt's "look" finds the effect and adopts it instead of creating a
second branch or deploy request.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from engines.base import (
    EngineState,
    NamespaceChange,
    PermanentEngineError,
    ResumeStateNotFound,
    RetryableEngineError,
)
from engines.mysql.ddl_text import absent_table_message, already_absent_message, drop_if_exists
from engines.options import PlanetScaleOptions, read_options
from engines.planetscale import deploy_states as ds
from engines.planetscale import naming
from engines.planetscale.api import ApiError, ApiUnreachable, Json, NotFound
from engines.planetscale.branch_sql import ABSENT
from engines.planetscale.retry import retrying
from engines.planetscale.session import Session, Waiting
from engines.targets import redact

_AUTO_INCREMENT = re.compile(r"\s+AUTO_INCREMENT=\d+")
# How often one step may find its creating call unanswered before giving up for this call.
MAX_UNANSWERED = 3


def canonical_json(document: Mapping[str, Any] | str | None) -> str:
    if isinstance(document, str):
        document = json.loads(document or "{}")
    return json.dumps(document or {}, sort_keys=True, separators=(",", ":"))


def _normalize(create: str) -> str:
    return _AUTO_INCREMENT.sub("", create).strip()


# -- branch ---------------------------------------------------------------------------------


def find_branch(s: Session) -> Json | None:
    try:
        return retrying(s.budget, lambda: s.api.get_branch(s.state.branch, s.budget), "reading the branch")
    except NotFound:
        return None


def ensure_branch(s: Session) -> Json:
    """The apply's branch, created if absent; a taken name is reused when its parent is main."""
    name, main = s.state.branch, s.target.main_branch
    for _ in range(MAX_UNANSWERED):
        branch = find_branch(s)
        if branch is not None:
            if branch.get("parent_branch") != main:
                raise PermanentEngineError(
                    f"branch {name} exists but was branched from {branch.get('parent_branch')!r}, "
                    f"not {main!r}; delete or rename it, then retry"
                )
            if s.intent_is("create_branch"):
                s.state.branch_created = True
            elif not s.state.branch_created and not s.state.branch_adopted:
                s.state.branch_adopted = True
                s.events.append(f"reusing existing branch {name}")
            s.state.intent = None
            s.save()
            return branch
        if s.state.branch_created:
            raise ResumeStateNotFound(f"branch {name}, created by this apply, is gone")
        s.intend("create_branch", branch=name)
        try:
            branch = s.api.create_branch(name, main, s.budget)
        except ApiUnreachable:
            continue  # created or not: the next look tells
        except ApiError as exc:
            if exc.status == 422 and "taken" in exc.message.lower():
                continue  # someone (an earlier owner) created it: look again and reuse it
            if exc.transient:
                continue
            raise PermanentEngineError(redact(f"creating branch {name}: {exc}")) from None
        s.state.branch_created = True
        s.state.intent = None
        s.save()
        s.events.append(f"created branch {name} from {main}")
        return branch
    raise RetryableEngineError(f"could not create or find branch {name}: no answer from the API")


def step_branch(s: Session) -> Waiting | None:
    branch = ensure_branch(s)
    if not branch.get("ready"):
        return Waiting(EngineState.PREPARING_BRANCH, f"waiting for branch {s.state.branch}")
    names = {
        str(k.get("name"))
        for k in retrying(s.budget, lambda: s.api.keyspaces(s.state.branch, s.budget), "keyspaces")
    }
    missing = [c.namespace for c in s.request.changes if c.namespace not in names]
    if missing:
        raise PermanentEngineError(
            f"keyspace(s) {', '.join(missing)} do not exist in database {s.target.database}"
        )
    s.set_phase("vschema")
    return None


# -- VSchema --------------------------------------------------------------------------------


def branch_vschema(s: Session, keyspace: str) -> str:
    return retrying(
        s.budget,
        partial(s.api.get_vschema, s.state.branch, keyspace, s.budget),
        f"reading the VSchema of {keyspace}",
    )


def step_vschema(s: Session) -> Waiting | None:
    for change in s.request.changes:
        if not change.vschema_changed or change.namespace in s.state.vschema_done:
            continue
        desired = canonical_json(change.vschema)
        current = branch_vschema(s, change.namespace)
        if canonical_json(current) != desired:
            s.intend("patch_vschema", keyspace=change.namespace)
            document = json.dumps(change.vschema, sort_keys=True)
            retrying(
                s.budget,
                partial(s.api.patch_vschema, s.state.branch, change.namespace, document, s.budget),
                f"patching the VSchema of {change.namespace}",
            )
            s.events.append(f"patched VSchema of {change.namespace} on {s.state.branch}")
        s.state.vschema_done.append(change.namespace)
        s.state.intent = None
        s.save()
    s.set_phase("ddl")
    return None


# -- DDL on the branch ----------------------------------------------------------------------


def _schema(s: Session, branch: str, keyspace: str) -> dict[str, str]:
    items = retrying(
        s.budget,
        lambda: s.api.branch_schema(branch, keyspace, s.budget),
        f"reading the schema of {keyspace} on {branch}",
    )
    return {str(i["name"]): _normalize(str(i.get("raw") or "")) for i in items}


def _already_on_branch(s: Session, change: NamespaceChange, table: str, action: str) -> bool:
    """For an adopted branch: does it already differ from main as this change would make it?"""
    branch = _schema(s, s.state.branch, change.namespace)
    main = _schema(s, s.target.main_branch, change.namespace)
    if action == "create":
        return table in branch and table not in main
    if action == "drop":
        return table not in branch and table in main
    return table in branch and table in main and branch[table] != main[table]


def _accept_absent(s: Session, keyspace: str, table: str, ddl: str, key: str) -> None:
    """The one rule for a DROP of an absent table (docs/architecture.md §5.1): a plain DROP fails
    for good, DROP TABLE IF EXISTS is done with nothing run, and says so."""
    label = f"{keyspace}.{table}"
    if not drop_if_exists(ddl):
        raise PermanentEngineError(absent_table_message(label))
    s.state.ddl_absent.append(key)
    s.events.append(already_absent_message(label))


def _absent_tables(s: Session, keyspace: str) -> set[str]:
    """Tables of `keyspace` whose DROP TABLE IF EXISTS found nothing to drop."""
    prefix = f"{keyspace}/"
    return {k[len(prefix) : k.rindex("/")] for k in s.state.ddl_absent if k.startswith(prefix)}


def step_ddl(s: Session) -> Waiting | None:
    for change in s.request.changes:
        for index, table_change in enumerate(change.tables):
            key = f"{change.namespace}/{table_change.table}/{index}"
            if key in s.state.ddl_done:
                continue
            table = table_change.table
            intent = s.state.intent
            ran = False
            if intent and intent.get("call") == "ddl" and intent.get("key") == key:
                # The answer to this DDL was lost: it ran if the table changed since.
                ran = s.sql.fingerprint(s.budget, change.namespace, table) != intent["before"]
            elif s.state.branch_adopted:
                ran = _already_on_branch(s, change, table, table_change.action)
            if not ran:
                before = s.sql.fingerprint(s.budget, change.namespace, table)
                if table_change.action == "drop" and before == ABSENT:
                    # Absent at its first attempt: a DROP that ran before a crash is caught
                    # above by its intent, so this is never our own earlier DROP.
                    _accept_absent(s, change.namespace, table, table_change.ddl, key)
                else:
                    s.intend("ddl", key=key, before=before)
                    s.sql.run_ddl(s.budget, change.namespace, table, table_change.ddl)
                    s.events.append(f"ran {table_change.action} of {change.namespace}.{table} on branch")
            s.state.ddl_done.append(key)
            s.state.intent = None
            s.save()
    s.sql.close()
    s.set_phase("validate_branch")
    return None


# -- validate the branch --------------------------------------------------------------------


def step_validate_branch(s: Session) -> Waiting | None:
    """The branch must differ from main by exactly the desired changes, nothing more or less."""
    retrying(s.budget, lambda: s.api.refresh_schema(s.state.branch, s.budget), "refresh schema")
    problems: list[str] = []
    for change in s.request.changes:
        if change.tables:
            branch = _schema(s, s.state.branch, change.namespace)
            main = _schema(s, s.target.main_branch, change.namespace)
            wanted = {t.table: t.action for t in change.tables}
            absent = _absent_tables(s, change.namespace)
            for table, action in wanted.items():
                if action == "drop" and table in absent and table not in branch and table not in main:
                    continue  # DROP TABLE IF EXISTS of a table that was never there
                if action == "create" and (table not in branch or table in main):
                    problems.append(f"{change.namespace}.{table} should be new on the branch")
                if action == "drop" and (table in branch or table not in main):
                    problems.append(f"{change.namespace}.{table} should be gone from the branch")
                if action == "alter" and (table not in branch or table not in main):
                    problems.append(f"{change.namespace}.{table} should exist on both sides")
            for table in sorted(set(branch) | set(main)):
                if table not in wanted and branch.get(table) != main.get(table):
                    problems.append(f"{change.namespace}.{table} differs but is not in the apply")
        if change.vschema_changed:
            current = branch_vschema(s, change.namespace)
            if canonical_json(current) != canonical_json(change.vschema):
                problems.append(f"VSchema of {change.namespace} is not the desired one")
    if problems:
        raise PermanentEngineError(
            f"branch {s.state.branch} does not match the apply: " + "; ".join(problems)
        )
    s.set_phase("create_dr")
    return None


# -- deploy request -------------------------------------------------------------------------


def find_tagged(s: Session) -> list[Json]:
    found = retrying(
        s.budget,
        lambda: s.api.list_deploy_requests(s.state.branch, s.target.main_branch, s.budget),
        "listing deploy requests",
    )
    return [
        dr
        for dr in found
        if naming.tagged_context(dr.get("notes")) == s.request.context and dr.get("branch") == s.state.branch
    ]


def adopt_tagged(s: Session) -> bool:
    """Adopt this apply's deploy request if one exists; more than one needs a human."""
    tagged = find_tagged(s)
    live = [
        dr for dr in tagged if dr.get("state") == "open" or dr.get("deployment_state") in ds.DEPLOYED_OR_LATER
    ]
    if len(live) > 1:
        numbers = ", ".join(f"#{dr['number']}" for dr in live)
        raise PermanentEngineError(
            f"deploy requests {numbers} are all tagged for {s.request.context}; close all but "
            f"one by hand, then retry (schemabot will not pick one for you)"
        )
    if not live and tagged:
        raise PermanentEngineError(
            f"deploy request #{tagged[0]['number']} for {s.request.context} was closed without "
            f"being deployed; schemabot will not open another one on its own"
        )
    if not live:
        return False
    dr = live[0]
    s.state.dr_number, s.state.dr_url = int(dr["number"]), dr.get("html_url")
    s.state.intent = None
    s.save()
    s.events.append(f"adopted deploy request #{dr['number']}")
    return True


def step_create_dr(s: Session) -> Waiting | None:
    """Open this apply's deploy request, exactly once.

    A deploy request has no name we choose, so it is found again only by the tag in its notes.
    When the answer to "open it" is lost, the server may still be working on the request and
    finish it after we gave up (a slow API, a proxy timeout): listing at once would find nothing,
    and opening again would make two. So an unanswered attempt is given
    `create_settle_seconds` (wall clock, across owners: the time is in the saved intent) to show
    up in the list before the request is sent again.
    """
    if s.state.dr_number is None and not adopt_tagged(s):
        if s.intent_is("create_deploy_request"):
            sent_at = float((s.state.intent or {}).get("at") or 0)
            wait = s.target.create_settle_seconds - (time.time() - sent_at)
            if wait > 0:
                return Waiting(
                    EngineState.CREATING_DEPLOY_REQUEST,
                    f"the last request to open the deploy request got no answer; checking for "
                    f"it for {wait:.0f}s more before sending it again",
                )
        s.intend("create_deploy_request", at=time.time())
        try:
            dr = s.api.create_deploy_request(
                s.state.branch,
                s.target.main_branch,
                naming.deploy_request_notes(s.request.context),
                not s.request.options.defer_cutover,
                s.budget,
            )
        except ApiUnreachable as exc:
            if adopt_tagged(s):
                return _dr_opened(s)
            if not exc.maybe_applied:  # it never reached PlanetScale: nothing to wait for
                s.state.intent = None
                s.save()
            return Waiting(EngineState.CREATING_DEPLOY_REQUEST, "no answer to opening the deploy request")
        except ApiError as exc:
            if not exc.transient:
                raise PermanentEngineError(redact(f"opening the deploy request: {exc}")) from None
            if adopt_tagged(s):
                return _dr_opened(s)
            return Waiting(EngineState.CREATING_DEPLOY_REQUEST, f"opening the deploy request: {exc}")
        s.state.dr_number, s.state.dr_url = int(dr["number"]), dr.get("html_url")
        s.state.intent = None
        s.save()
        s.events.append(f"opened deploy request #{dr['number']}")
    return _dr_opened(s)


def _dr_opened(s: Session) -> Waiting | None:
    s.set_phase("validate_dr")
    return None


def get_dr(s: Session) -> Json:
    try:
        return retrying(
            s.budget,
            lambda: s.api.get_deploy_request(s.dr_number, s.budget),
            f"reading deploy request #{s.state.dr_number}",
        )
    except NotFound:
        raise ResumeStateNotFound(f"deploy request #{s.state.dr_number} of this apply is gone") from None


def note_dr(s: Session, dr: Json) -> str:
    state = str(dr.get("deployment_state"))
    changed = state != s.state.last_deploy_state
    if dr.get("deployed_at") and not s.state.deployed_at:
        s.state.deployed_at, changed = str(dr["deployed_at"]), True
    if changed:
        if s.state.last_deploy_state is not None:
            s.events.append(f"deploy request #{s.state.dr_number}: {s.state.last_deploy_state} -> {state}")
        s.state.last_deploy_state = state
        s.save()
    return state


def failure_message(dr: Json) -> str:
    deployment = dr.get("deployment") or {}
    detail = dr.get("error") or deployment.get("deploy_check_errors") or ""
    lint = "; ".join(str(e.get("error_description") or e) for e in deployment.get("lint_errors") or [])
    return "; ".join(x for x in (str(detail), lint) if x) or "no detail given"


def step_validate_dr(s: Session) -> Waiting | None:
    dr = get_dr(s)
    state = note_dr(s, dr)
    if state == "pending":
        return Waiting(EngineState.VALIDATING_DEPLOY_REQUEST, "PlanetScale is computing the diff")
    if state == "no_changes":
        return s.finish(EngineState.COMPLETED, "main already has the desired schema; nothing to deploy")
    if state == "error":
        return s.finish(
            EngineState.FAILED,
            f"deploy request #{s.state.dr_number} is not deployable: {failure_message(dr)}",
        )
    if state != "ready":  # deployed already (adopted mid-deploy)
        s.set_phase("deploying")
        return None
    diff = retrying(s.budget, lambda: s.api.deploy_request_diff(s.dr_number, s.budget), "reading the diff")
    expected_tables = {(c.namespace, t.table) for c in s.request.changes for t in c.tables}
    expected_vschemas = {c.namespace for c in s.request.changes if c.vschema_changed}
    unexpected: list[str] = []
    for entry in diff:
        keyspace, name = entry.get("keyspace_name"), entry.get("name")
        if entry.get("kind") == "vschema":
            if keyspace not in expected_vschemas:
                unexpected.append(f"the VSchema of {keyspace}")
        elif keyspace is None:  # PlanetScale's diff may name the table only
            if name not in {table for _, table in expected_tables}:
                unexpected.append(str(name))
        elif (keyspace, name) not in expected_tables:
            unexpected.append(f"{keyspace}.{name}")
    if unexpected:
        raise PermanentEngineError(
            f"deploy request #{s.state.dr_number} would also change {', '.join(unexpected)}; "
            f"refusing to deploy it (was main changed since the branch was made?)"
        )
    deployment = dr.get("deployment") or {}
    s.state.instant = bool(
        read_options(PlanetScaleOptions, s.request.options.extra).instant_ddl
        and deployment.get("instant_ddl_eligible")
    )
    s.set_phase("deploy")
    return None


def step_deploy(s: Session) -> Waiting | None:
    if s.state.deferred_deploy and not s.state.deploy_requested:
        return Waiting(
            EngineState.WAITING_FOR_DEPLOY,
            f"deploy request #{s.state.dr_number} is ready; waiting for a start to deploy it",
        )
    for _ in range(MAX_UNANSWERED):
        state = note_dr(s, get_dr(s))
        if state in ds.DEPLOYED_OR_LATER:
            s.set_phase("deploying")
            return None
        if state != "ready":
            s.set_phase("validate_dr")
            return None
        s.intend("deploy", number=s.state.dr_number, instant=s.state.instant)
        try:
            s.api.deploy(s.dr_number, s.state.instant, s.budget)
        except ApiUnreachable:
            continue  # deployed or not: the deploy request's state tells
        except ApiError as exc:
            if exc.transient or exc.status == 422:
                continue  # 422: no longer ready (someone deployed it); re-read
            raise PermanentEngineError(redact(f"deploying #{s.state.dr_number}: {exc}")) from None
        s.events.append(f"deployed deploy request #{s.state.dr_number}")
        s.set_phase("deploying")
        return None
    raise RetryableEngineError(f"deploy of #{s.state.dr_number}: no answer from the API")
