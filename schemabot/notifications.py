"""Webhooks on apply events: a stable JSON body, an HMAC-SHA256 signature, retries, an audit entry.

Events: `submitted`, `waiting_for_cutover`, `needs_attention`, `failed`, `completed`,
`reverted`, `cancelled` (an apply entering that state; `submitted` when it is stored).

Configuration (environment or `.env`), either or both:

    SCHEMABOT_WEBHOOK_URL=https://hooks.example/schemabot     one global webhook
    SCHEMABOT_WEBHOOK_SECRET=...                              its HMAC key (optional)
    SCHEMABOT_WEBHOOK_FORMAT=json|slack                       default json
    SCHEMABOT_WEBHOOK_EVENTS=failed,needs_attention            default: all of the above
    SCHEMABOT_WEBHOOKS='[{"url": "...", "secret": "...", "format": "slack",
                          "events": ["failed"], "targets": ["prod"]}]'   per target, or several
    SCHEMABOT_WEBHOOK_ATTEMPTS=5  SCHEMABOT_WEBHOOK_BACKOFF=1  SCHEMABOT_WEBHOOK_TIMEOUT=5

The JSON body (format `json`) is versioned: `"schema": "schemabot.apply_event/v1"`; fields are
only ever added within a version. Headers: `X-Schemabot-Event`, `X-Schemabot-Delivery` (a uuid,
the same on every retry of one delivery) and, with a secret, `X-Schemabot-Signature:
sha256=<hex HMAC-SHA256 of the raw body>`. The `slack` format is `{"text": ...}` for a Slack
incoming webhook (Slack does not check signatures; the header is sent anyway).

Delivery happens on the events thread of the process that recorded the transition
(`schemabot.events`), never in the tick. A 5xx, 429 or network error is retried with exponential
backoff (tenacity) up to the attempt budget; other 4xx are final. Every delivery, delivered or
not, is recorded in the apply's audit log as a `webhook` entry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from engines.targets import redact
from schemabot.events import ApplyRow, Recorded

log = logging.getLogger(__name__)

SCHEMA = "schemabot.apply_event/v1"
EVENTS = (
    "submitted",
    "waiting_for_cutover",
    "needs_attention",
    "failed",
    "completed",
    "reverted",
    "cancelled",
)


class Webhook(BaseModel):
    url: str
    secret: str | None = None
    format: Literal["json", "slack"] = "json"
    events: list[str] = Field(default_factory=lambda: list(EVENTS))
    targets: list[str] | None = Field(default=None, description="None: every target")

    def wants(self, event: str, target: str | None) -> bool:
        if event not in self.events:
            return False
        return self.targets is None or (target or "").lower() in {t.lower() for t in self.targets}


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCHEMABOT_", env_file=".env", extra="ignore")

    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_format: Literal["json", "slack"] = "json"
    webhook_events: str | None = None
    webhooks: list[Webhook] = Field(default_factory=list)
    webhook_attempts: int = Field(default=5, ge=1)
    webhook_backoff: float = Field(default=1.0, ge=0)
    webhook_timeout: float = Field(default=5.0, gt=0)

    def all(self) -> list[Webhook]:
        hooks = list(self.webhooks)
        if self.webhook_url:
            events = [e.strip() for e in (self.webhook_events or "").split(",") if e.strip()]
            hooks.append(
                Webhook(
                    url=self.webhook_url,
                    secret=self.webhook_secret,
                    format=self.webhook_format,
                    events=events or list(EVENTS),
                )
            )
        return hooks


@lru_cache(maxsize=1)
def webhook_settings() -> WebhookSettings:
    """Read once per process; tests that change the environment call `cache_clear()`."""
    return WebhookSettings()


def event_name(entry: Recorded) -> str | None:
    """The webhook event of an audit entry, or None when it is none of ours."""
    if entry.event == "submitted":
        return "submitted"
    if entry.event == "attention":  # a reason recorded without a state of its own
        return "needs_attention"
    if entry.event == "state" and entry.new_state in EVENTS:
        return entry.new_state
    return None


def body(event: str, entry: Recorded, apply: dict[str, Any] | None) -> dict[str, Any]:
    """The v1 JSON document (stable: fields are only added)."""
    apply = apply or {}
    return {
        "schema": SCHEMA,
        "event": event,
        "apply_id": entry.apply_id,
        "state": entry.new_state,
        "previous_state": entry.old_state,
        "target": apply.get("target"),
        "database": apply.get("database"),
        "engine": apply.get("engine"),
        "submitted_by": apply.get("submitted_by"),
        "attempt": apply.get("attempt"),
        "message": redact(entry.message) if entry.message else None,
        "error": redact(apply["error"]) if apply.get("error") else None,
        "occurred_at": datetime.fromtimestamp(entry.at, UTC).isoformat(),
    }


def slack_body(doc: dict[str, Any]) -> dict[str, Any]:
    icon = {"failed": ":x:", "completed": ":white_check_mark:", "needs_attention": ":warning:"}.get(
        doc["event"], ":information_source:"
    )
    text = (
        f"{icon} schemabot apply `{doc['apply_id']}` is *{doc['event'].replace('_', ' ')}*"
        f" (target {doc['target']}, engine {doc['engine']})"
    )
    if doc["event"] == "waiting_for_cutover":
        text += f"\nNext: `schemabot cutover {doc['apply_id']}`"
    if doc.get("error"):
        text += f"\n> {doc['error']}"
    elif doc.get("message"):
        text += f"\n> {doc['message']}"
    return {"text": text}


def sign(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


class _Retry(Exception):
    """A response worth retrying (5xx, 429)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retry | httpx.TransportError)


def _where(url: str) -> str:
    """The receiver for the audit log: scheme, host and path, never credentials or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


def deliver(hook: Webhook, event: str, doc: dict[str, Any], cfg: WebhookSettings) -> dict[str, Any]:
    """POST one event with retries; return what happened (for the audit log and metrics)."""
    raw = json.dumps(slack_body(doc) if hook.format == "slack" else doc, sort_keys=True).encode()
    delivery = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "schemabot-webhook/1",
        "X-Schemabot-Event": event,
        "X-Schemabot-Delivery": delivery,
    }
    if hook.secret:
        headers["X-Schemabot-Signature"] = sign(hook.secret, raw)
    attempts = 0
    status: int | None = None
    outcome, error = "failed", None
    try:
        with httpx.Client(timeout=cfg.webhook_timeout) as client:
            for attempt in Retrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(cfg.webhook_attempts),
                wait=wait_exponential(multiplier=cfg.webhook_backoff, max=60),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    response = client.post(hook.url, content=raw, headers=headers)
                    status = response.status_code
                    if status >= 500 or status == 429:
                        raise _Retry(status)
        outcome = "delivered" if status is not None and status < 400 else "rejected"
    except (_Retry, httpx.HTTPError) as exc:
        error = redact(str(exc))[:300]
    return {
        "event": event,
        "outcome": outcome,
        "status": status,
        "attempts": attempts,
        "delivery": delivery,
        "url": _where(hook.url),
        "format": hook.format,
        **({"error": error} if error else {}),
    }


def observe(entry: Recorded, row: ApplyRow) -> None:
    """Deliver `entry` to every webhook that wants it (on the events thread)."""
    event = event_name(entry)
    if event is None:
        return
    cfg = webhook_settings()
    configured = cfg.all()
    if not configured:
        return
    apply = row.get()
    if event == "waiting_for_cutover" and not ((apply or {}).get("options") or {}).get("defer_cutover"):
        return  # passing through on the way to an automatic cutover: nobody needs to act
    hooks = [h for h in configured if h.wants(event, (apply or {}).get("target"))]
    if not hooks:
        return
    doc = body(event, entry, apply)
    for hook in hooks:
        result = deliver(hook, event, doc, cfg)
        _record(entry, result)
        from schemabot import metrics

        metrics.webhook_delivered(result["outcome"])


def _record(entry: Recorded, result: dict[str, Any]) -> None:
    """The delivery in the apply's audit log (not fenced: it is a fact, not a driver's write)."""
    if entry.bind is None:
        return
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from schemabot.storage.clock import db_now
    from schemabot.storage.models import ApplyLog

    message = (
        f"{result['event']} webhook to {result['url']}: {result['outcome']}"
        f" (HTTP {result['status']}, {result['attempts']} attempt(s))"
    )
    try:
        with Session(bind=entry.bind) as session, session.begin():
            session.execute(
                sa.insert(ApplyLog).values(
                    apply_id=entry.apply_id,
                    event="webhook",
                    message=message,
                    detail=result,
                    created_at=db_now(),
                )
            )
    except Exception as exc:
        log.warning("recording the webhook delivery of %s failed: %s (%s)", entry.apply_id, exc, message)
