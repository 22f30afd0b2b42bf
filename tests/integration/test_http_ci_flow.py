"""Issue 14 §3: the README's curl CI flow works as written: submit with a token, poll, cutover,
against a real `schemabot serve`, a real worker, Redis and MariaDB (the fake engine stands in for
the engine: the subject is the HTTP flow)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from schemabot.auth import hash_secret, new_secret
from tests.support.fake_engine import FakeTarget
from tests.support.proc_env import proc_env
from tests.support.processes import REPO
from tests.support.serve import SCHEMABOT
from tests.support.servers import free_port, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq"),
]


def readme_ci_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("A CI job, from submission to cutover") :]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "the README's CI flow block is missing"
    return match.group(1)


def test_the_readme_curl_flow_submits_polls_and_cuts_over(tmp_path: Path) -> None:
    script = readme_ci_block()
    # The one substitution: the fake engine instead of spirit, and a short poll pause.
    script = script.replace('"engine": "spirit"', '"engine": "fake"').replace("sleep 5", "sleep 0.3")
    fake = FakeTarget(tmp_path / "fake.db")
    fake.set_knob("rows_total", 6)
    secret = new_secret()
    tokens = [{"name": "ci-bot", "sha256": hash_secret(secret), "scope": "apply", "targets": ["prod"]}]
    extra = {"SCHEMABOT_API_TOKENS": json.dumps(tokens), "SCHEMABOT_TARGET_PROD": f"fake://{fake.path}"}
    with proc_env(tmp_path, fake.path, extra=extra) as env:
        cluster = env.cluster()
        port = free_port()
        with open(tmp_path / "serve.log", "ab") as log:
            serve = subprocess.Popen(
                [SCHEMABOT, "serve", "--port", str(port)],
                cwd=REPO,
                env=env.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            cluster.worker()
            wait_for(
                lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200,
                60,
                "schemabot serve",
            )
            shell_env = {**os.environ, "API": f"http://127.0.0.1:{port}", "SCHEMABOT_TOKEN": secret}
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                env=shell_env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, (done.stdout, done.stderr, cluster.logs())
            receipt = json.loads(done.stdout.strip().splitlines()[-1])
            assert receipt["kind"] == "cutover" and receipt["created"] is True
            client = env.client()
            final = client.wait(receipt["apply_id"], timeout=60, stop_at_waiting=False)
            assert final.state == "completed", cluster.logs()
            assert final.submitted_by == "ci-bot"
            log = client.log(receipt["apply_id"])
            requested = [e for e in log if e.event == "control" and "requested" in (e.message or "")]
            assert [(e.detail or {}).get("by") for e in requested] == ["ci-bot"]
        finally:
            cluster.stop()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(10)
