"""JSON shapes of the emulated resources, with PlanetScale's field names.

Only the fields a client (planetscale-go, our engine) reads are emitted; timestamps are RFC 3339
in UTC like PlanetScale's. List endpoints wrap items as `{"type": "list", "data": [...]}` with
pagination fields that always say "one page".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from planetscale_emulator.config import EmulatorConfig
from planetscale_emulator.store import Row

ACTOR = {"id": "emulator", "type": "ServiceToken", "display_name": "schemabot emulator"}


def timestamp(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "list",
        "current_page": 1,
        "next_page": None,
        "next_page_url": None,
        "prev_page": None,
        "prev_page_url": None,
        "data": items,
    }


def web_base(config: EmulatorConfig) -> str:
    return f"http://{config.public_host}:{config.port}/{config.org}/{config.database}"


def branch(config: EmulatorConfig, row: Row) -> dict[str, Any]:
    return {
        "id": row["public_id"],
        "type": "Branch",
        "name": row["name"],
        "parent_branch": row["parent_branch"],
        "production": bool(row["production"]),
        "ready": bool(row["ready"]),
        "safe_migrations": bool(row["production"]),
        "sharded": False,
        "region": {"slug": "local", "display_name": "Local emulator"},
        "html_url": f"{web_base(config)}/{row['name']}",
        "access_host_url": f"{config.public_host}:{config.mysql_port}",
        "schema_last_updated_at": timestamp(row["schema_refreshed_at"] or row["updated_at"]),
        "created_at": timestamp(row["created_at"]),
        "updated_at": timestamp(row["updated_at"]),
    }


def keyspace(name: str, created_at: float) -> dict[str, Any]:
    return {
        "id": f"ks-{name}",
        "type": "Keyspace",
        "name": name,
        "shards": 1,
        "sharded": False,
        "replicas": 0,
        "extra_replicas": 0,
        "ready": True,
        "created_at": timestamp(created_at),
        "updated_at": timestamp(created_at),
    }


def password(
    config: EmulatorConfig, row: Row, branch_row: Row, *, with_secret: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row["id"],
        "type": "Password",
        "name": row["name"],
        "role": row["role"],
        "username": row["username"],
        "access_host_url": f"{config.public_host}:{config.mysql_port}",
        "database_branch": branch(config, branch_row),
        "actor": ACTOR,
        "created_at": timestamp(row["created_at"]),
        "expires_at": timestamp(row["expires_at"]),
        "ttl_seconds": None
        if row["expires_at"] is None
        else int(row["expires_at"] - row["created_at"]),
        "renewable": False,
        "replica": False,
    }
    if with_secret:
        # As on PlanetScale, the plain text is shown once, in the answer to the creation.
        out["plain_text"] = row["plain_text"]
    return out


def operations(row: Row) -> list[dict[str, Any]]:
    out = []
    for op in json.loads(row["operations"] or "[]"):
        op["created_at"] = timestamp(op.get("created_at"))
        op["updated_at"] = timestamp(op.get("updated_at"))
        out.append(op)
    return out


def deploy_request(config: EmulatorConfig, row: Row, now: float) -> dict[str, Any]:
    state = row["deployment_state"]
    deployment = {
        "id": f"dp-{row['public_id']}",
        "type": "Deployment",
        "state": state,
        "deploy_request_number": row["number"],
        "into_branch": row["into_branch"],
        "auto_cutover": bool(row["auto_cutover"]),
        "auto_delete_branch": bool(row["auto_delete_branch"]),
        "deployable": state not in ("pending", "error", "no_changes"),
        "instant_ddl": bool(row["instant_ddl"]),
        "instant_ddl_eligible": bool(row["instant_ddl_eligible"]),
        "throttle_ratio": row["throttle_ratio"],
        "lint_errors": [],
        "deploy_check_errors": row["error_message"],
        "preceding_deployments": [],
        "created_at": timestamp(row["created_at"]),
        "updated_at": timestamp(row["updated_at"]),
        "queued_at": timestamp(row["queued_at"]),
        "started_at": timestamp(row["started_at"]),
        "submitted_at": timestamp(row["queued_at"]),
        "ready_to_cutover_at": timestamp(row["ready_to_cutover_at"]),
        "cutover_at": timestamp(row["cutover_at"]),
        "finished_at": timestamp(row["finished_at"]),
        "revert_expires_at": timestamp(row["revert_expires_at"]),
        "cutover_expiring": False,
    }
    return {
        "id": row["public_id"],
        "type": "DeployRequest",
        "number": row["number"],
        "branch": row["branch"],
        "into_branch": row["into_branch"],
        "state": row["state"],
        "deployment_state": state,
        "approved": True,
        "notes": row["notes"],
        "html_url": f"{web_base(config)}/deploy-requests/{row['number']}",
        "actor": ACTOR,
        "closed_by": ACTOR if row["state"] == "closed" else None,
        "deployment": deployment,
        "error": row["error_message"],
        "created_at": timestamp(row["created_at"]),
        "updated_at": timestamp(row["updated_at"]),
        "closed_at": timestamp(row["closed_at"]),
        "deployed_at": timestamp(row["deployed_at"]),
        "revert_window_seconds_left": None
        if row["revert_expires_at"] is None or state != "complete_pending_revert"
        else max(0, int(row["revert_expires_at"] - now)),
    }
