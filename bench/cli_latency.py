"""CLI latency: how long `schemabot status APPLY_ID` takes to answer, against `python -c pass`
measured in the same run (the interpreter's own start-up), on an SQLite state database holding
one apply. Issue 15 §4 asks for a read command under 0.3 s.

    .venv/bin/python bench/cli_latency.py [--runs 15]

Prints the median of each and the difference (what schemabot itself costs).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This directory holds a copy.py that would shadow the standard library's `copy`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SCHEMABOT = str(Path(sys.executable).with_name("schemabot"))


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{cmd} failed: {done.stderr.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    from schemabot.api import ChangeSet, Client
    from schemabot.migrate import upgrade
    from schemabot.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir / 'state.db'}"
        upgrade(database_url=url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMABOT_")}
        env.update(
            {
                "SCHEMABOT_DATABASE_URL": url,
                "SCHEMABOT_BROKER_URL": "redis://127.0.0.1:1/0",  # never contacted by a read
                "SCHEMABOT_TARGET_LOCAL": "mysql://root@127.0.0.1:3306/bench",
            }
        )
        settings = Settings(
            database_url=url,
            broker_url=env["SCHEMABOT_BROKER_URL"],
            targets={"local": env["SCHEMABOT_TARGET_LOCAL"]},
        )
        client = Client(settings)
        client.runtime.dispatcher = _NoBroker()
        apply_id = client.submit_apply(
            "local", "direct", [ChangeSet(ddl=["ALTER TABLE t ADD COLUMN c INT"])]
        ).apply_id

        baseline = [timed([sys.executable, "-c", "pass"], env, workdir) for _ in range(args.runs)]
        status = [timed([SCHEMABOT, "status", apply_id], env, workdir) for _ in range(args.runs)]
        base, stat = statistics.median(baseline), statistics.median(status)
        print(f"python -c pass           median {base * 1000:7.1f} ms  ({args.runs} runs)")
        print(f"schemabot status APPLY   median {stat * 1000:7.1f} ms  ({args.runs} runs)")
        print(f"schemabot's own cost            {(stat - base) * 1000:7.1f} ms;  ratio {stat / base:.1f}x")
        print(f"target: status under 300 ms -> {'met' if stat < 0.3 else 'NOT met'}")


class _NoBroker:
    def start_apply(self, apply_id: str) -> bool:
        return False

    def poll_progress(self, apply_id: str, token: int, seq: int, countdown: float) -> bool:
        return False

    def resume_apply(self, apply_id: str, token: int, seq: int = 0, countdown: float = 0) -> bool:
        return False

    def recovery_sweep(self) -> bool:
        return False


if __name__ == "__main__":
    main()
