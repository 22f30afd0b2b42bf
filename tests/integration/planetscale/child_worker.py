"""A "worker" process for the crash tests: drives the planetscale engine like the orchestrator
and SIGKILLs itself right after the server answered one chosen side-effecting call.

    python -m tests.integration.planetscale.child_worker CONFIG_JSON

CONFIG_JSON: {"target_dsn", "admin_url", "context", "state_file", "kill_after", "defer_cutover"}.
`kill_after` is create_branch | create_deploy_request | deploy | apply_deploy. The resume state
is persisted to `state_file` at every save, as schemabot's storage would hold it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from dataclasses import replace
from pathlib import Path

import httpx

from engines.base import ApplyOptions, EngineState
from engines.planetscale import PlanetScaleEngine
from engines.targets import Target
from tests.integration.planetscale.orchestrator_loop import TERMINAL, StateBox, control, request

CALLS = {
    "create_branch": ("POST", r"/branches$"),
    "create_deploy_request": ("POST", r"/deploy-requests$"),
    "deploy": ("POST", r"/deploy-requests/\d+/deploy$"),
    "apply_deploy": ("POST", r"/deploy-requests/\d+/apply-deploy$"),
}


def main(config: dict[str, object]) -> int:
    method, pattern = CALLS[str(config["kill_after"])]

    def die_after_answer(response: httpx.Response) -> None:
        # The server has acted and answered; the worker dies before it can record the result.
        if response.request.method == method and re.search(pattern, response.request.url.path):
            os.kill(os.getpid(), signal.SIGKILL)

    http = httpx.Client(event_hooks={"response": [die_after_answer]})
    engine = PlanetScaleEngine(Target("shop", str(config["target_dsn"])), http_client=http)
    box = StateBox(path=Path(str(config["state_file"])))
    options = ApplyOptions(defer_cutover=bool(config["defer_cutover"]), skip_revert=True)
    req = request(str(config["context"]), box, options=options)
    result = engine.apply(replace(req, resume_state=box.load()))
    assert result.resume_state is not None
    box.save(result.resume_state)
    admin = httpx.Client(base_url=str(config["admin_url"]))
    for _ in range(60):
        progress = engine.progress(replace(req, resume_state=box.state))
        box.save(dict(progress.resume_state or {}))
        if progress.state is EngineState.WAITING_FOR_CUTOVER:
            cut = engine.cutover(control(req, box))
            box.save(dict(cut.resume_state or {}))
        if progress.state in TERMINAL:
            return 0
        admin.post("/admin/advance", json={"ticks": 1})
    return 3  # never got killed: the test fails on the exit status


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
