"""A small client of the PlanetScale HTTP API, just the calls the engine makes.

Failures are typed so the engine can decide without guessing:

- `NotFound`: a 404 whose body says `{"code": "not_found"}`. Only this means "gone"; any other
  failure of a read is *not* evidence that something does not exist.
- `ApiError`: any other error answer; `transient` for 408/429/5xx.
- `ApiUnreachable`: no answer at all (connection refused, timeout, connection dropped).
  `maybe_applied` is True when the request may have reached the server: the engine then treats
  the side effect as unknown and looks for it before calling again.

The token is sent in the Authorization header only and never appears in an error text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from engines.planetscale.budget import Budget
from engines.planetscale.target import PlanetScaleTarget

Json = dict[str, Any]


class ApiFailure(Exception):
    transient: bool = True


class ApiError(ApiFailure):
    def __init__(self, method: str, path: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        # An untyped 404 (from a proxy, a load balancer) says nothing about the resource:
        # it is retried like a 5xx, never read as "gone".
        self.transient = status in (404, 408, 429) or status >= 500


class NotFound(ApiError):
    """PlanetScale's typed 404: the resource does not exist. Never retried."""

    def __init__(self, method: str, path: str, status: int, code: str, message: str) -> None:
        super().__init__(method, path, status, code, message)
        self.transient = False


class ApiUnreachable(ApiFailure):
    def __init__(self, method: str, path: str, exc: Exception, *, maybe_applied: bool) -> None:
        super().__init__(f"{method} {path}: no answer ({type(exc).__name__}: {exc})")
        self.maybe_applied = maybe_applied


# Called after every API call with (method, answered without error). The engine knows nothing of
# who listens: schemabot's metrics register here (schemabot/metrics.py).
CALL_OBSERVERS: list[Callable[[str, bool], None]] = []


class PlanetScaleAPI:
    def __init__(self, target: PlanetScaleTarget, http: httpx.Client | None = None) -> None:
        self.target = target
        self.http = http or httpx.Client()
        self._base = (
            f"{target.api_url}/organizations/{quote(target.org)}/databases/{quote(target.database)}"
        )

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        budget: Budget,
        *,
        json: Json | None = None,
        params: dict[str, str] | None = None,
    ) -> Json:
        ok = False
        try:
            body = self._request(method, path, budget, json=json, params=params)
            ok = True
            return body
        finally:
            for observer in CALL_OBSERVERS:
                observer(method, ok)

    def _request(
        self,
        method: str,
        path: str,
        budget: Budget,
        *,
        json: Json | None = None,
        params: dict[str, str] | None = None,
    ) -> Json:
        timeout = budget.call_timeout()
        try:
            response = self.http.request(
                method,
                self._base + path,
                json=json,
                params=params,
                timeout=timeout,
                headers={"Authorization": self.target.authorization, "Accept": "application/json"},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ApiUnreachable(method, path, exc, maybe_applied=False) from None
        except httpx.HTTPError as exc:
            raise ApiUnreachable(method, path, exc, maybe_applied=method != "GET") from None
        if response.status_code >= 400:
            code, message = "unknown", response.text[:300]
            try:
                body = response.json()
                code, message = str(body.get("code", code)), str(body.get("message", message))
            except ValueError:
                pass
            kind = NotFound if response.status_code == 404 and code == "not_found" else ApiError
            raise kind(method, path, response.status_code, code, message)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            body = response.json()
        except ValueError:
            raise ApiError(
                method, path, response.status_code, "malformed", "body is not JSON"
            ) from None
        return body if isinstance(body, dict) else {"data": body}

    def list_all(
        self, path: str, budget: Budget, params: dict[str, str] | None = None
    ) -> list[Json]:
        """Every item of a paginated list (PlanetScale pages lists; follow `next_page`)."""
        items: list[Json] = []
        query = dict(params or {})
        for _ in range(100):
            body = self.request("GET", path, budget, params=query)
            items += list(body.get("data") or [])
            next_page = body.get("next_page")
            if not next_page:
                return items
            query["page"] = str(next_page)
        return items

    # -- branches ---------------------------------------------------------------------------

    def get_branch(self, name: str, budget: Budget) -> Json:
        return self.request("GET", f"/branches/{quote(name)}", budget)

    def create_branch(self, name: str, parent: str, budget: Budget) -> Json:
        return self.request(
            "POST", "/branches", budget, json={"name": name, "parent_branch": parent}
        )

    def refresh_schema(self, branch: str, budget: Budget) -> Json:
        return self.request("POST", f"/branches/{quote(branch)}/refresh-schema", budget)

    def branch_schema(self, branch: str, keyspace: str, budget: Budget) -> list[Json]:
        return self.list_all(f"/branches/{quote(branch)}/schema", budget, {"keyspace": keyspace})

    def keyspaces(self, branch: str, budget: Budget) -> list[Json]:
        return self.list_all(f"/branches/{quote(branch)}/keyspaces", budget)

    def get_vschema(self, branch: str, keyspace: str, budget: Budget) -> str:
        body = self.request(
            "GET", f"/branches/{quote(branch)}/keyspaces/{quote(keyspace)}/vschema", budget
        )
        return str(body.get("raw") or "{}")

    def patch_vschema(self, branch: str, keyspace: str, document: str, budget: Budget) -> Json:
        return self.request(
            "PATCH",
            f"/branches/{quote(branch)}/keyspaces/{quote(keyspace)}/vschema",
            budget,
            json={"vschema": document},
        )

    def create_password(self, branch: str, name: str, ttl: int, budget: Budget) -> Json:
        return self.request(
            "POST",
            f"/branches/{quote(branch)}/passwords",
            budget,
            json={"name": name, "role": "admin", "ttl": ttl},
        )

    def delete_password(self, branch: str, password_id: str, budget: Budget) -> Json:
        return self.request("DELETE", f"/branches/{quote(branch)}/passwords/{quote(password_id)}", budget)

    # -- deploy requests --------------------------------------------------------------------

    def list_deploy_requests(self, branch: str, into: str, budget: Budget) -> list[Json]:
        return self.list_all("/deploy-requests", budget, {"branch": branch, "into_branch": into})

    def create_deploy_request(
        self, branch: str, into: str, notes: str, auto_cutover: bool, budget: Budget
    ) -> Json:
        return self.request(
            "POST",
            "/deploy-requests",
            budget,
            json={
                "branch": branch,
                "into_branch": into,
                "notes": notes,
                "auto_cutover": auto_cutover,
            },
        )

    def close_deploy_request(self, number: int, budget: Budget) -> Json:
        return self.request("PATCH", f"/deploy-requests/{number}", budget, json={"state": "closed"})

    def get_deploy_request(self, number: int, budget: Budget) -> Json:
        return self.request("GET", f"/deploy-requests/{number}", budget)

    def deploy_request_diff(self, number: int, budget: Budget) -> list[Json]:
        return self.list_all(f"/deploy-requests/{number}/diff", budget)

    def operations(self, number: int, budget: Budget) -> list[Json]:
        return self.list_all(f"/deploy-requests/{number}/operations", budget)

    def deploy(self, number: int, instant: bool, budget: Budget) -> Json:
        return self.request(
            "POST", f"/deploy-requests/{number}/deploy", budget, json={"instant_ddl": instant}
        )

    def action(self, number: int, action: str, budget: Budget) -> Json:
        """apply-deploy, cancel, revert or skip-revert."""
        return self.request("POST", f"/deploy-requests/{number}/{action}", budget)

    def auto_apply(self, number: int, enable: bool, budget: Budget) -> Json:
        return self.request(
            "PUT", f"/deploy-requests/{number}/auto-apply", budget, json={"enable": enable}
        )

    def get_throttler(self, number: int, budget: Budget) -> Json:
        return self.request("GET", f"/deploy-requests/{number}/throttler", budget)

    def set_throttler(self, number: int, ratio: int, budget: Budget) -> Json:
        return self.request(
            "PATCH", f"/deploy-requests/{number}/throttler", budget, json={"ratio": ratio}
        )
