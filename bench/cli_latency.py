"""CLI latency: how long `schemabot --help`, `list`, `log APPLY_ID` and `status APPLY_ID` take to
answer, against `python -c pass` measured in the same run (the interpreter's own start-up), on an
SQLite state database holding one apply. Issue 15 §4 asks for a read command under 0.3 s.

    .venv/bin/python bench/cli_latency.py [--runs 15]

Prints the median of each, what schemabot itself costs above the interpreter, and the ratio.
Runs are interleaved (one of each command per round) so a busy machine slows all alike.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script: bench/ stays off the import path (its scripts are not modules to import).
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

        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "schemabot --help": [SCHEMABOT, "--help"],
            "schemabot list": [SCHEMABOT, "list"],
            "schemabot log APPLY": [SCHEMABOT, "log", apply_id],
            "schemabot status APPLY": [SCHEMABOT, "status", apply_id],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                times[name].append(timed(cmd, env, workdir))
        medians = {name: statistics.median(runs) for name, runs in times.items()}
        base = medians["python -c pass"]
        print(f"{'command':<24} {'median':>9} {'own cost':>9} {'ratio':>6}   ({args.runs} runs each)")
        for name, median in medians.items():
            own = (median - base) * 1000
            print(f"{name:<24} {median * 1000:6.1f} ms {own:6.1f} ms {median / base:5.1f}x")
        slow = [name for name, median in medians.items() if median >= 0.3]
        print(f"target: every command under 300 ms -> {'met' if not slow else 'NOT met: ' + ', '.join(slow)}")

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
