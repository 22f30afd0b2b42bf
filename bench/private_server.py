"""A private `mariadbd` for the benchmark: the CPU time it spends on each run, and which
statements deadlock (it logs every deadlock, `innodb_print_all_deadlocks`).

`bench/online_copy.py --private-server` runs its whole benchmark against such a server (started and
stopped by it, grants on, the shared server's 128 MB buffer pool unless `--buffer-pool-mb`) and,
after every run, prints the server's CPU seconds for it and each deadlock as "victim statement
<- other statement, on which lock", with its count. On a machine shared with other work,
wall-clock times vary by 2x from run to run; the server's CPU time for the same work varies far
less, so it compares the tools' cost. A server of its own also keeps the logging global off
everybody else's server.

`binlog=True` (`bench/online_copy.py --change-source binlog`) starts it with binary logging in ROW
format with full row images and a server id: what spirit's binlog change source needs
(engines/spirit/README.md, "The binlog change source") and what the shared server lacks. Every
tool of the bench then runs on it, so the trigger-based tools pay for binary logging too and the
comparison stays fair.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from devservers.servers import MariaDBServer

_TRANSACTION = re.compile(r"\*\*\* \((\d)\) TRANSACTION:")
_ROLLED_BACK = re.compile(r"\*\*\* WE ROLL BACK TRANSACTION \((\d)\)")
_STATEMENT = re.compile(
    r"^(INSERT|UPDATE|DELETE|SELECT|REPLACE|ALTER|CREATE|DROP|RENAME|LOCK TABLES)\b.*$",
    re.MULTILINE | re.IGNORECASE,
)
_WAITING = re.compile(r"WAITING FOR THIS LOCK TO BE GRANTED:\s*\n(.*)$", re.MULTILINE)
_NUMBERS = re.compile(r"\b\d+\b|'[^']*'")


class PrivateServer(MariaDBServer):
    """A throwaway `mariadbd` that writes every deadlock to its error log."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        buffer_pool_mb: int = 128,
        binlog: bool = False,
        autoinc_lock_mode: int | None = None,
    ) -> None:
        super().__init__(workdir or Path(tempfile.mkdtemp(prefix="sb-bench-server-")))
        self.buffer_pool_mb = buffer_pool_mb
        self.binlog = binlog
        self.autoinc_lock_mode = autoinc_lock_mode

    def server_options(self) -> list[str]:
        logging = (
            [
                "--server-id=1",
                f"--log-bin={self.workdir / 'binlog'}",
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
            ]
            if self.binlog
            else ["--skip-log-bin"]
        )
        return [
            f"--innodb-buffer-pool-size={self.buffer_pool_mb}M",
            *logging,
            *(
                [f"--innodb-autoinc-lock-mode={self.autoinc_lock_mode}"]
                if self.autoinc_lock_mode is not None
                else []
            ),
            "--innodb-print-all-deadlocks=ON",
        ]

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"

    def cpu_seconds(self) -> float:
        """User and system CPU time the server has used so far (Linux /proc)."""
        if self.proc is None:
            return 0.0
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Deadlock:
    victim: str
    other: str
    waited_for: str
    other_waited_for: str

    def __str__(self) -> str:
        return (
            f"victim: {self.victim} [waited for: {self.waited_for}]; other: {self.other} "
            f"[waited for: {self.other_waited_for}]"
        )


def _shape(statement: str) -> str:
    """The statement with its values taken out, cut short: one line per kind of statement."""
    text = _NUMBERS.sub("?", " ".join(statement.split()))
    return text if len(text) <= 110 else text[:107] + "..."


def _lock(text: str) -> str:
    text = re.sub(r"trx id \d+|heap no \d+|page no \d+|space id \d+|n bits \d+", "", text)
    text = re.sub(r"RECORD LOCKS\s+", "record ", text)
    return " ".join(text.split())[:110]


def read(log: Path, offset: int = 0) -> tuple[list[Deadlock], int]:
    """The deadlocks written to `log` after byte `offset`, and the offset to read from next."""
    if not log.exists():
        return [], offset
    data = log.read_bytes()
    text = data[offset:].decode(errors="replace")
    found: list[Deadlock] = []
    for block in text.split("Transactions deadlock detected")[1:]:
        parts = _TRANSACTION.split(block)
        # parts: [before, "1", body1, "2", body2, ...]
        bodies = {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}
        victim_match = _ROLLED_BACK.search(block)
        if victim_match is None or len(bodies) < 2:
            continue
        victim = victim_match[1]
        other = "1" if victim == "2" else "2"
        waiting = _WAITING.search(bodies.get(victim, ""))
        other_waiting = _WAITING.search(bodies.get(other, ""))
        found.append(
            Deadlock(
                _statement(bodies.get(victim, "")),
                _statement(bodies.get(other, "")),
                _lock(waiting[1]) if waiting else "?",
                _lock(other_waiting[1]) if other_waiting else "?",
            )
        )
    return found, len(data)


def _statement(body: str) -> str:
    match = _STATEMENT.search(body)
    return _shape(match[0]) if match else "(no statement shown)"


def summary(deadlocks: list[Deadlock]) -> list[str]:
    counts = Counter(str(d) for d in deadlocks)
    return [f"{n:4d} x {line}" for line, n in counts.most_common()]
