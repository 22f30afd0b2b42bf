"""A read-mostly web page of applies, served by `schemabot serve` under /ui (issue 15 §2).

    GET  /ui/applies                      the list (state, target, engine, age, who submitted)
    GET  /ui/applies/{id}                 one apply: per-table bars, phase, rows, rate, ETA, the plan
                                          (its statements) and the audit log
    GET  /ui/applies/live, .../{id}/live  the same fragments as JSON, polled every second
    POST /ui/applies/{id}/control/{kind}  cutover, stop, start, cancel (scope apply; the buttons are
                                          shown only to such tokens, each asks for confirmation)
    GET  /ui/login, POST /ui/session      paste a token once; it is kept in an HttpOnly,
                                          SameSite=Strict cookie limited to /ui

Same auth as the API: a bearer token (header, or the cookie set by /ui/login) of scope read to
look, apply to press a button, restricted to the token's targets; no token configured
(development mode) means no login. Writes go through the API's RequestGuard (JSON only, no
cross-origin) and need an `X-Schemabot-UI` header, which no cross-site form can send.

Plain server-rendered HTML (string.Template and html.escape), one small script and one
stylesheet served from the package: no build step, nothing from a CDN.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from schemabot import auth
from schemabot.api import ApplyStatus, Client, LogEntry, TaskStatus
from schemabot.errors import NotFound
from schemabot.progress import duration, next_command, phase_of
from schemabot.states import State
from schemabot.storage.plans import load_plan

HERE = Path(__file__).parent
COOKIE = "schemabot_ui"
CONTROLS = ("cutover", "stop", "start", "cancel")
# Which buttons make sense in which apply state (the engine still has the last word).
_BUTTONS = {
    "cutover": {State.WAITING_FOR_CUTOVER},
    "stop": {State.RUNNING, State.PENDING, State.RECOVERING, State.WAITING_FOR_CUTOVER},
    "start": {State.STOPPED},
    "cancel": set(State) - {State.COMPLETED, State.FAILED, State.CANCELLED, State.REVERTED},
}
e = html.escape


@cache
def _asset(name: str) -> str:
    return (HERE / name).read_text()


def _page(title: str, page: str, body: str, who: auth.Principal | None, apply_id: str = "") -> HTMLResponse:
    whom = "" if who is None else f"signed in as {who.name} ({who.scope.value})"
    text = Template(_asset("templates/page.html")).substitute(
        title=e(title), page=page, apply_id=e(apply_id), who=e(whom), body=body
    )
    return HTMLResponse(text, headers={"Cache-Control": "no-store"})


def _principal(request: Request) -> auth.Principal | None:
    """The caller, from the Authorization header or the /ui cookie; None when unknown."""
    if request.app.state.development:
        return auth.DEVELOPMENT
    header = request.headers.get("authorization")
    if not header and request.cookies.get(COOKIE):
        header = f"Bearer {request.cookies[COOKIE]}"
    try:
        return auth.authenticate(header, request.app.state.tokens)
    except auth.Unauthenticated:
        return None


def _age(iso: str | None) -> str:
    if not iso:
        return "—"
    at = datetime.fromisoformat(iso)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return duration((datetime.now(UTC) - at).total_seconds())


def _state(state: str) -> str:
    return f'<span class="state s-{e(state)}">{e(state.replace("_", " "))}</span>'


def _percent(task: TaskStatus) -> float:
    if task.percent is not None:
        return max(0.0, min(100.0, task.percent))
    return 100.0 if task.state == "completed" else 0.0


# -- fragments ---------------------------------------------------------------------------------


def list_rows(applies: list[ApplyStatus]) -> str:
    if not applies:
        return '<tr><td colspan="8" class="muted">no applies yet</td></tr>'
    rows = []
    for a in applies:
        done = sum(1 for t in a.tasks if t.state == "completed")
        pct = sum(_percent(t) for t in a.tasks) / len(a.tasks) if a.tasks else 0.0
        rows.append(
            f'<tr data-apply="{e(a.apply_id)}">'
            f'<td><a href="/ui/applies/{e(a.apply_id)}">{e(a.apply_id)}</a></td>'
            f"<td>{_state(a.state)}</td><td>{e(a.target)}</td><td>{e(a.engine)}</td><td>{e(a.database)}</td>"
            f"<td>{done}/{len(a.tasks)} tables · {pct:.0f}%</td><td>{_age(a.created_at)}</td>"
            f"<td>{e(a.submitted_by or '—')}</td></tr>"
        )
    return "".join(rows)


def headline(a: ApplyStatus) -> str:
    text = (
        f"<h1>{e(a.apply_id)} {_state(a.state)}</h1>"
        f'<p class="meta">target <b>{e(a.target)}</b> · engine <b>{e(a.engine)}</b> · database '
        f"{e(a.database)} · attempt {a.attempt} · submitted {_age(a.created_at)} ago"
        f" by {e(a.submitted_by or 'the CLI or Python API')}</p>"
    )
    if a.error:
        text += f'<p class="error">{e(a.error)}</p>'
    command = next_command(a.apply_id, a.state)
    if command:
        text += f"<p>Waiting for a person. Next: <code>{e(command)}</code></p>"
    return text


def task_rows(a: ApplyStatus) -> str:
    rows = []
    for t in a.tasks:
        pct = _percent(t)
        rows_text = f"{t.rows_copied or 0:,}/{t.rows_total:,}" if t.rows_total else "—"
        rows.append(
            f'<tr data-task="{e(t.task_id)}" data-rows="{t.rows_copied or 0}"'
            f' data-total="{t.rows_total or 0}"'
            f' data-state="{e(t.state)}"><td>{e(t.namespace)}.{e(t.table or "(vschema)")}</td>'
            f'<td>{e(t.action)}</td>{_engine_cell(t)}<td class="phase">{e(phase_of(t))}</td>'
            f'<td><span class="bar"><span class="fill" style="width:{pct:.1f}%;display:block"></span></span>'
            f' <span class="pct">{pct:.1f}%</span></td><td class="rows">{rows_text}</td>'
            f'<td class="rate">—</td><td class="eta">—</td></tr>'
        )
    return "".join(rows)


def _engine_cell(t: TaskStatus) -> str:
    """The task's engine; the reason `--engine auto` chose it under the name (schemabot/engine_mix.py)."""
    why = f'<br><span class="muted">{e(t.engine_reason)}</span>' if t.engine_reason else ""
    return f'<td class="engine">{e(t.engine or "—")}{why}</td>'


def log_rows(entries: list[LogEntry]) -> str:
    rows = []
    for entry in reversed(entries[-200:]):
        change = f"{entry.old_state or ''} → {entry.new_state}" if entry.new_state else ""
        rows.append(
            f"<tr><td>{e(entry.at or '')}</td><td>{e(entry.event)}</td><td>{e(change)}</td>"
            f"<td>{e(entry.message or '')}</td></tr>"
        )
    return "".join(rows)


def control_buttons(a: ApplyStatus, who: auth.Principal | None) -> str:
    if who is None or not who.scope.covers(auth.Scope.APPLY) or not who.may_use(a.target):
        return ""
    state = a.state
    buttons = [
        f'<button data-control="{kind}" id="control-{kind}">{kind}</button>'
        for kind in CONTROLS
        if state in _BUTTONS[kind]
    ]
    return "".join(buttons)


def plan(a: ApplyStatus, stored: dict[str, Any] | None = None) -> str:
    """The plan the apply was submitted from (`plan show`'s text: engine choice and why, lint
    findings, estimates), else the statements it runs."""
    if stored is not None:
        from schemabot.plan_cli import render

        return e(render(stored))
    statements = [f"-- {t.namespace}.{t.table or '(vschema)'}\n{t.ddl}" for t in a.tasks if t.ddl]
    return e("\n\n".join(statements)) if statements else '<span class="muted">no statements</span>'


# -- routes ------------------------------------------------------------------------------------


def install(app: FastAPI, client: Client) -> None:
    """Add the /ui routes to the HTTP API's FastAPI app."""

    def visible(who: auth.Principal, apply_id: str) -> ApplyStatus:
        status = client.get_apply(apply_id)
        if not who.may_use(status.target):
            raise auth.Forbidden(f"token {who.name!r} may not use target {status.target!r}")
        return status

    def listing(who: auth.Principal) -> list[ApplyStatus]:
        targets = None if who.targets is None or who.scope is auth.Scope.ADMIN else sorted(who.targets)
        return client.list_applies(None, 100, targets=targets)

    def reader(request: Request) -> auth.Principal | None:
        who = _principal(request)
        if who is not None:
            auth.require(who, auth.Scope.READ)
        return who

    @app.get("/ui", include_in_schema=False)
    def ui_root() -> Response:
        return RedirectResponse("/ui/applies", status_code=303)

    @app.get("/ui/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        types = {"app.js": "text/javascript", "app.css": "text/css"}
        if name not in types:
            raise NotFound(f"no asset {name!r}")
        return Response(_asset(f"static/{name}"), media_type=types[name])

    @app.get("/ui/login", include_in_schema=False)
    def login_page(request: Request) -> HTMLResponse:
        body = (
            '<h1>Sign in</h1><form id="login"><p>Paste an API token (scope read to look, apply for the '
            'buttons):</p><input type="password" autocomplete="off" autofocus> <button>Sign in</button>'
            '<p id="login-error" class="error"></p></form>'
        )
        return _page("sign in", "login", body, None)

    @app.post("/ui/session", include_in_schema=False)
    async def session(request: Request) -> Response:
        if request.headers.get("x-schemabot-ui") != "1":
            raise auth.Forbidden("missing X-Schemabot-UI header")
        document = await request.json()
        secret = str(document.get("token") or "") if isinstance(document, dict) else ""
        if not request.app.state.development:
            auth.authenticate(f"Bearer {secret}", request.app.state.tokens)
        response = Response(status_code=204)
        secure = request.url.scheme == "https"
        response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", path="/ui", secure=secure)
        return response

    @app.get("/ui/applies", include_in_schema=False)
    def list_page(request: Request) -> Response:
        who = reader(request)
        if who is None:
            return RedirectResponse("/ui/login", status_code=303)
        body = (
            '<h1>Applies</h1><p class="meta" id="poll-status">live</p><table><thead><tr><th>apply</th>'
            "<th>state</th><th>target</th><th>engine</th><th>database</th><th>progress</th><th>age</th>"
            "<th>submitted by</th></tr></thead>"
            f'<tbody id="apply-rows">{list_rows(listing(who))}</tbody></table>'
        )
        return _page("applies", "list", body, who)

    @app.get("/ui/applies/live", include_in_schema=False)
    def list_live(request: Request) -> Response:
        who = reader(request)
        if who is None:
            raise auth.Unauthenticated("sign in at /ui/login")
        return JSONResponse({"fragments": {"apply-rows": list_rows(listing(who))}, "terminal": False})

    def fragments(a: ApplyStatus, who: auth.Principal) -> dict[str, str]:
        return {
            "headline": headline(a),
            "task-rows": task_rows(a),
            "log-rows": log_rows(client.log(a.apply_id)),
            "controls": control_buttons(a, who),
        }

    @app.get("/ui/applies/{apply_id}", include_in_schema=False)
    def apply_page(apply_id: str, request: Request) -> Response:
        who = reader(request)
        if who is None:
            return RedirectResponse("/ui/login", status_code=303)
        a = visible(who, apply_id)
        parts = fragments(a, who)
        body = (
            f'<div id="headline">{parts["headline"]}</div>'
            f'<p><span class="controls" id="controls">{parts["controls"]}</span>'
            '<span id="control-result" class="muted"></span></p>'
            "<table><thead><tr><th>table</th><th>action</th><th>engine</th><th>phase</th><th>progress</th>"
            "<th>rows</th>"
            "<th>rate</th><th>ETA</th></tr></thead>"
            f'<tbody id="task-rows">{parts["task-rows"]}</tbody></table>'
            '<p class="muted" id="poll-status">live</p>'
            f'<h2>Plan</h2><pre id="plan">{plan(a, load_plan(client.runtime.db, apply_id))}</pre>'
            "<h2>Audit log</h2><table><thead><tr><th>at</th><th>event</th><th>state</th><th>message</th>"
            f'</tr></thead><tbody id="log-rows">{parts["log-rows"]}</tbody></table>'
        )
        return _page(apply_id, "apply", body, who, apply_id)

    @app.get("/ui/applies/{apply_id}/live", include_in_schema=False)
    def apply_live(apply_id: str, request: Request) -> Response:
        who = reader(request)
        if who is None:
            raise auth.Unauthenticated("sign in at /ui/login")
        a = visible(who, apply_id)
        return JSONResponse({"fragments": fragments(a, who), "terminal": a.state.is_terminal})

    @app.post("/ui/applies/{apply_id}/control/{kind}", include_in_schema=False)
    def press(apply_id: str, kind: str, request: Request) -> Response:
        if request.headers.get("x-schemabot-ui") != "1":
            raise auth.Forbidden("missing X-Schemabot-UI header")
        who = _principal(request)
        if who is None:
            raise auth.Unauthenticated("sign in at /ui/login")
        if kind not in CONTROLS:
            raise NotFound(f"no control {kind!r} on this page")
        auth.require(who, auth.Scope.APPLY)
        visible(who, apply_id)
        receipt = client.request_control(apply_id, kind, requested_by=who.name)  # 409 when refused
        return JSONResponse({"apply_id": receipt.apply_id, "kind": receipt.kind, "created": receipt.created})


__all__ = ["install"]
