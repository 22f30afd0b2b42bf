"""Real Celery worker and beat processes for tests, each in its own process group so a test can
SIGKILL, SIGSTOP or SIGCONT a whole worker (its main process and its pool children) at once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from tests.support.servers import wait_for

REPO = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_state(pid: int) -> str | None:
    """The one-letter state of a process (`T`: stopped), None if it is gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def process_group_members(pgid: int) -> set[int]:
    members = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
            members.add(int(entry))
    return members


class CeleryProcess:
    def __init__(
        self, kind: str, env: Mapping[str, str], workdir: Path, name: str | None = None, concurrency: int = 1
    ) -> None:
        self.kind = kind
        self.name = name or f"{kind}-{uuid.uuid4().hex[:6]}"
        self.env = dict(env)
        self.workdir = workdir
        self.concurrency = concurrency
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        queue = self.env["SCHEMABOT_QUEUE"]
        if self.kind == "worker":
            return [
                CELERY,
                "-A",
                "tasks",
                "worker",
                "-Q",
                queue,
                "-c",
                str(self.concurrency),
                "-n",
                f"{self.name}@%h",
                "--pool",
                "prefork",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "INFO",
            ]
        return [
            CELERY,
            "-A",
            "tasks",
            "beat",
            "-l",
            "INFO",
            "--pidfile=",
            "-s",
            str(self.workdir / f"{self.name}-schedule"),
        ]

    def start(self, wait: bool = True) -> CeleryProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if wait:
            marker = "ready." if self.kind == "worker" else "beat: Starting"
            wait_for(lambda: marker in self.log(), 30, f"{self.name} to start")
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pids(self) -> set[int]:
        return process_group_members(self.pgid)

    def stopped(self) -> bool:
        """Is any of its processes frozen (SIGSTOP)?"""
        return any(process_state(pid) == "T" for pid in self.pids())

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, sig)

    def kill(self) -> None:
        """SIGKILL the whole worker: no shutdown, no acks, no cleanup."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
        # Pool children may outlive a killed parent for a moment; leave none behind.
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Cluster:
    """Workers and beats sharing one environment; stops everything it started."""

    def __init__(self, env: Mapping[str, str], workdir: Path) -> None:
        self.env = dict(env)
        self.workdir = workdir
        self.processes: list[CeleryProcess] = []

    def worker(self, name: str | None = None, concurrency: int = 1, wait: bool = True) -> CeleryProcess:
        proc = CeleryProcess("worker", self.env, self.workdir, name, concurrency)
        self.processes.append(proc)
        return proc.start(wait)

    def beat(self, name: str | None = None) -> CeleryProcess:
        proc = CeleryProcess("beat", self.env, self.workdir, name)
        self.processes.append(proc)
        return proc.start()

    def owner_of(self, lease_owner: str) -> CeleryProcess:
        pid = int(lease_owner.rsplit(":", 1)[1])
        for proc in self.processes:
            if pid in proc.pids():
                return proc
        raise LookupError(f"no process of this cluster is {lease_owner}")

    def freeze_the_worker_inside(
        self, inside: Callable[[], int | None], timeout: float = 20
    ) -> CeleryProcess:
        """SIGSTOP the worker whose process is inside a step (`inside()`: that process's pid, or
        None between steps) and return it, proven frozen there: after the stop, `inside()` must
        still name one of its processes, which a stopped process cannot leave. Reading the pid
        and stopping its worker are two moves; a worker that left the step in between (a loaded
        machine widens that gap) is thawed and the next one is caught. Without this proof a test
        could freeze or kill a worker that holds nothing and wait for a takeover that never
        comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = inside()
            if pid is None:
                time.sleep(0.02)
                continue
            try:
                worker = self.owner_of(f"host:{pid}")
            except LookupError:
                continue  # the process ended between the two reads
            worker.signal(signal.SIGSTOP)
            if inside() in worker.pids():
                return worker
            worker.signal(signal.SIGCONT)
        raise TimeoutError(f"no worker was caught inside a step within {timeout}s")

    def stop(self) -> None:
        for proc in self.processes:
            proc.stop()

    def kill_all(self) -> None:
        """A crash of every process: no warm shutdown, so nothing goes back to the queue."""
        for proc in self.processes:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.kill()

    def logs(self) -> str:
        return "\n".join(f"===== {p.name}\n{p.log()[-6000:]}" for p in self.processes)

    def stacks(self) -> str:
        """Every worker pool process's thread stacks (tasks/apply_tasks.py registers SIGUSR2 for
        it), then the logs they were written to: what a test shows when a step seems stuck."""
        import time

        for proc in self.processes:
            if proc.kind != "worker" or proc.proc is None or proc.proc.poll() is not None:
                continue
            for pid in proc.pids() - {proc.pgid}:  # the pool's children, not the main process
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGUSR2)
        time.sleep(1)
        return "\n".join(f"===== {p.name}\n{p.log()[-20000:]}" for p in self.processes)
