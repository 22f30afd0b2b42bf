"""Benchmark: the spirit engine against pt-online-schema-change and a blocking ALTER ... COPY.

    .venv/bin/python bench/copy.py [--rows 1000000] [--runs 3] [--write-rate 200]

What it measures, in one run and on the same server:
- `spirit`: the full pipeline, from `submit_apply` to `completed`: a Celery worker and beat run
  as processes with default settings (state in MariaDB, the machine's Redis as broker), and
  the time includes queueing, leases, ticks and progress bookkeeping. With `--engine-only` the
  engine is driven through the contract instead (`apply`, then `progress` with the default step
  budget until COMPLETED, no orchestrator), which isolates the engine's own speed.
- `pt-osc`: `pt-online-schema-change --execute` with its defaults (Debian package
  percona-toolkit: `apt-get install -y percona-toolkit`).
- `blocking`: `ALTER TABLE ... , ALGORITHM=COPY` (the application is blocked meanwhile).

Each tool runs `--runs` times on a freshly filled table; medians and ratios are printed. Then the
same again while four writers share a fixed rate of inserts, updates and deletes on the table, each
mirrored into an `expected` table in the same transaction; after every run the table is compared
with `expected` row by row, and any missing, extra or differing row is reported (rows lost).

`--change-source triggers,binlog` runs spirit once per change source, side by side (`spirit-
triggers`, `spirit-binlog`). The binlog source needs binary logging in ROW format, which the
shared server does not have: then every tool runs on a private `mariadbd` started with binary
logging (tests/support/servers.py, buffer pool `--buffer-pool-mb`), engine-only. Under load the
report gives, per tool, the failed writes, the worst and the 99th percentile write latency.

Table shape (sysbench's): `id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, k INT UNSIGNED (indexed,
random), c CHAR(120), pad CHAR(60)`; about 230 MB for a million rows. The change
`MODIFY c VARCHAR(130) NOT NULL DEFAULT '', ADD COLUMN d INT NOT NULL DEFAULT 0` cannot be done
instantly by MariaDB 10.11, so every tool copies the table.
"""

# ruff: noqa: E402  (the import path is fixed before the imports; see below)
from __future__ import annotations

import sys
from pathlib import Path

# This script is named copy.py, like the standard library's `copy` module: keep its own folder
# off the import path, or `import copy` (done by dataclasses and argparse) would load this file.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import functools
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pymysql

from engines.base import ApplyOptions, EngineState, NamespaceChange, OperationRequest, TableChange
from engines.spirit import SpiritEngine
from engines.targets import Target
from schemabot.api import ChangeSet, Client
from schemabot.local_services import start_celery, stop_process, wait_for
from schemabot.migrate import upgrade
from schemabot.settings import Settings

ALTER = "MODIFY c VARCHAR(130) NOT NULL DEFAULT '', ADD COLUMN d INT NOT NULL DEFAULT 0"
TABLE = (
    "CREATE TABLE {name} (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "k INT UNSIGNED NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', "
    "pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k)) ENGINE=InnoDB"
)


class Server:
    def __init__(self, host: str, port: int, user: str, password: str, schema: str):
        self.host, self.port, self.user, self.password, self.schema = (
            host,
            port,
            user,
            password,
            schema,
        )

    def connect(self) -> pymysql.Connection:
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.schema,
            autocommit=True,
            charset="utf8mb4",
        )

    @property
    def dsn(self) -> str:
        auth = self.user if not self.password else f"{self.user}:{self.password}"
        return f"mysql://{auth}@{self.host}:{self.port}/{self.schema}"


def fill(server: Server, rows: int) -> None:
    """A fresh `t` (and `expected`, its mirror) with `rows` rows; MariaDB's seq_ engine makes
    them server-side in a few seconds."""
    conn = server.connect()
    with conn.cursor() as cur:
        for name in ("t", "expected", "_sb_t_old", "_sb_t_new", "_sb_t_err", "_sb_spirit_checkpoint"):
            cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(TABLE.format(name="t"))
        cur.execute(
            f"INSERT INTO t (k, c, pad) SELECT FLOOR(RAND() * {rows}), "
            "CONCAT(MD5(seq), MD5(seq + 1), MD5(seq + 2), LEFT(MD5(seq + 3), 24)), "
            f"CONCAT(MD5(seq + 4), LEFT(MD5(seq + 5), 28)) FROM seq_1_to_{rows}"
        )
        cur.execute(TABLE.format(name="expected"))
        cur.execute("INSERT INTO expected SELECT * FROM t")
    conn.close()


SPIRIT_VOLUME: int | None = None  # --volume (engine-only runs)


def run_spirit(server: Server, context: str, change_source: str | None = None) -> None:
    engine = SpiritEngine(Target("bench", server.dsn))
    extra = {"change_source": change_source} if change_source else {}
    request = OperationRequest(
        context=context,
        changes=[NamespaceChange(server.schema, (TableChange("t", f"ALTER TABLE t {ALTER}", "alter"),))],
        options=ApplyOptions(volume=SPIRIT_VOLUME, extra=extra),
    )
    started = time.monotonic()
    phases: dict[str, float] = {}
    try:
        if not engine.apply(request).accepted:
            raise RuntimeError("apply not accepted")
        phase = "copy"
        while True:
            result = engine.progress(request)
            now = (result.resume_state or {}).get("phase", phase)
            if now != phase:
                phases[phase] = time.monotonic() - started - sum(phases.values())
                phase = now
            if result.state == EngineState.COMPLETED:
                break
        phases["cutover"] = time.monotonic() - started - sum(phases.values())
    finally:
        engine.close()
    print("            spirit phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in phases.items()))


class Pipeline:
    """schemabot's whole path: a worker and beat as processes, the producer API, default timings.
    Started once; each run is timed from submit to completed."""

    QUEUE = "schemabot-bench"

    def __init__(self, server: Server, broker_url: str) -> None:
        self.server = server
        self.stack = ExitStack()
        self.workdir = Path(tempfile.mkdtemp(prefix="sb-bench-copy-"))
        state = f"{server.schema}_state"
        conn = server.connect()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{state}`")
            cur.execute(f"CREATE DATABASE `{state}`")
        conn.close()
        self.state_db = state
        auth = server.user + (f":{server.password}" if server.password else "")
        state_url = f"mysql+pymysql://{auth}@{server.host}:{server.port}/{state}"
        upgrade(database_url=state_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMABOT_")}
        env.update(
            {
                "SCHEMABOT_DATABASE_URL": state_url,
                "SCHEMABOT_BROKER_URL": broker_url,
                "SCHEMABOT_QUEUE": self.QUEUE,
                "SCHEMABOT_TARGET_BENCH": server.dsn,
            }
        )
        for kind in ("worker", "beat"):
            proc = start_celery(kind, env, self.workdir / f"{kind}.log", self.QUEUE, "bench")
            self.stack.callback(stop_process, proc)
        wait_for(
            lambda: "ready." in (self.workdir / "worker.log").read_text(errors="replace"),
            60,
            "the bench worker to start",
        )
        self.client = Client(
            Settings(
                database_url=state_url, broker_url=broker_url, queue=self.QUEUE, targets={"bench": server.dsn}
            )
        )

    def run(self, server: Server, context: str) -> None:
        apply_id = self.client.submit_apply(
            "bench", "spirit", [ChangeSet([f"ALTER TABLE t {ALTER}"], server.schema)]
        ).apply_id
        final = self.client.wait(apply_id, interval=0.05)
        if final.state != "completed":
            raise RuntimeError(f"{apply_id} ended {final.state}: {final.error}")

    def close(self) -> None:
        self.stack.close()
        conn = self.server.connect()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.state_db}`")
        conn.close()


def run_pt_osc(server: Server, _: str) -> None:
    dsn = f"h={server.host},P={server.port},u={server.user},D={server.schema},t=t"
    if server.password:
        dsn += f",p={server.password}"
    subprocess.run(
        ["pt-online-schema-change", "--alter", ALTER, dsn, "--execute", "--recursion-method=none"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def run_blocking(server: Server, _: str) -> None:
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute(f"ALTER TABLE t {ALTER}, ALGORITHM=COPY")
    conn.close()


class Load:
    """`writers` connections sharing a fixed rate: insert, update, delete, each mirrored into
    `expected` in the same transaction. Each write's latency is recorded (the application's view
    of the change: how long its writes waited)."""

    def __init__(self, server: Server, rate: float, rows: int, writers: int = 4):
        self.server, self.rate, self.rows = server, rate, rows
        self.stop = threading.Event()
        self.done = 0
        self.failed = 0
        self.errors: dict[int, int] = {}
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(n, writers), daemon=True)
            for n in range(writers)
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def worst_ms(self) -> float:
        return 1000 * max(self.latencies, default=0.0)

    def p99_ms(self) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

    def _run(self, n: int, writers: int) -> None:
        rng = random.Random(7 + n)
        conn = self.server.connect()
        next_id = self.rows + 10_000_000 + n * 1_000_000
        interval = writers / self.rate
        due = time.monotonic()
        with conn.cursor() as cur:
            while not self.stop.is_set():
                due += interval
                op = rng.choice(("insert", "update", "delete"))
                key = rng.randrange(n + 1, self.rows + 1, writers)  # each writer its own keys
                t0 = time.monotonic()
                try:
                    cur.execute("BEGIN")
                    for table in ("t", "expected"):
                        if op == "insert":
                            cur.execute(
                                f"INSERT INTO {table} (id, k, c, pad) VALUES (%s, %s, %s, %s)",
                                (next_id, key, f"c{key}", "load"),
                            )
                        elif op == "update":
                            cur.execute(f"UPDATE {table} SET k = k + 1, pad = 'upd' WHERE id = %s", (key,))
                        else:
                            cur.execute(f"DELETE FROM {table} WHERE id = %s", (key,))
                    cur.execute("COMMIT")
                    next_id += op == "insert"
                    with self.lock:
                        self.done += 1
                        self.latencies.append(time.monotonic() - t0)
                except pymysql.MySQLError as error:
                    cur.execute("ROLLBACK")
                    with self.lock:
                        self.failed += 1
                        code = int(error.args[0]) if error.args else -1
                        self.errors[code] = self.errors.get(code, 0) + 1
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        conn.close()


def differences(server: Server) -> dict[str, int]:
    """Rows of `expected` missing from `t`, rows of `t` not in `expected`, rows that differ."""
    conn = server.connect()
    found = {}
    with conn.cursor() as cur:
        for name, sql in {
            "missing": "SELECT COUNT(*) FROM expected e LEFT JOIN t ON t.id = e.id WHERE t.id IS NULL",
            "extra": "SELECT COUNT(*) FROM t LEFT JOIN expected e ON t.id = e.id WHERE e.id IS NULL",
            "differing": "SELECT COUNT(*) FROM expected e JOIN t ON t.id = e.id "
            "WHERE NOT (e.k <=> t.k AND e.c <=> t.c AND e.pad <=> t.pad)",
        }.items():
            cur.execute(sql)
            row = cur.fetchone()
            found[name] = int(row[0]) if row else -1
    conn.close()
    return found


def measure(
    server: Server,
    tools: dict[str, Callable[[Server, str], None]],
    runs: int,
    rows: int,
    rate: float,
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in tools}
    worst: dict[str, list[float]] = {name: [] for name in tools}
    p99: dict[str, list[float]] = {name: [] for name in tools}
    failed: dict[str, list[int]] = {name: [] for name in tools}
    for run in range(runs):
        for name, tool in tools.items():
            fill(server, rows)
            load_label = f" under {rate:g} writes/s" if rate else ""
            started = time.monotonic()
            if rate:
                with Load(server, rate, rows) as load:
                    tool(server, f"bench-{name}-{run}-{time.time_ns()}")
                    elapsed = time.monotonic() - started
                    time.sleep(0.5)  # writes after the change land too
                writes = (
                    f", {load.done} writes ({load.failed} failed {load.errors or ''}), "
                    f"worst write {load.worst_ms():.0f} ms, p99 {load.p99_ms():.0f} ms"
                )
                worst[name].append(load.worst_ms())
                p99[name].append(load.p99_ms())
                failed[name].append(load.failed)
            else:
                tool(server, f"bench-{name}-{run}-{time.time_ns()}")
                elapsed = time.monotonic() - started
                writes = ""
            lost = differences(server)
            times[name].append(elapsed)
            print(f"  {name:15s} run {run + 1}{load_label}: {elapsed:6.2f}s{writes}; rows lost: {lost}")
            if any(lost.values()):
                print(f"  !! {name} lost or changed rows: {lost}")
    if rate:
        print(f"\n  under {rate:g} writes/s, {runs} runs | writes failed (all runs) | worst write, "
              "median of runs (max) | p99 write, median of runs")
        for name in tools:
            print(
                f"  {name:15s} | {sum(failed[name]):5d} | {statistics.median(worst[name]):6.0f} ms "
                f"({max(worst[name]):.0f}) | {statistics.median(p99[name]):6.0f} ms"
            )
    return times


def report(label: str, times: dict[str, list[float]]) -> None:
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{label}: medians")
    for name, median in medians.items():
        print(f"  {name:9s} {median:6.2f}s   runs: {', '.join(f'{v:.2f}' for v in times[name])}")
    for name in [n for n in medians if n.startswith("spirit")]:
        spirit = medians[name]
        if "pt-osc" in medians:
            print(f"  {name} / pt-osc   = {spirit / medians['pt-osc']:.2f}x  (goal <= 0.7x)")
        print(f"  {name} / blocking = {spirit / medians['blocking']:.2f}x  (goal <= 2x)")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write-rate", type=float, default=200.0, help="writes per second under load")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3306)
    parser.add_argument("--user", default="root")
    parser.add_argument("--password", default="")
    parser.add_argument("--schema", default="sbt_spirit_bench")
    parser.add_argument("--skip-pt-osc", action="store_true")
    parser.add_argument(
        "--engine-only", action="store_true", help="drive the engine directly, without schemabot"
    )
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--volume", type=int, help="spirit's volume 1..11 (engine-only runs)")
    parser.add_argument("--load-only", action="store_true", help="skip the runs without load")
    parser.add_argument("--no-load-only", action="store_true", help="skip the runs under load")
    parser.add_argument(
        "--change-source",
        default="",
        help="spirit's change source(s), comma-separated: triggers, binlog (binlog: every tool "
        "on a private mariadbd with binary logging, engine-only)",
    )
    parser.add_argument("--buffer-pool-mb", type=int, default=128, help="the private server's")
    args = parser.parse_args()
    sources = [s.strip() for s in args.change_source.split(",") if s.strip()]
    if any(s not in ("triggers", "binlog", "auto") for s in sources):
        parser.error("--change-source takes triggers, binlog or auto")
    if hasattr(sys.stdout, "reconfigure"):  # progress shows as it happens, also in a file
        sys.stdout.reconfigure(line_buffering=True)
    tools: dict[str, Callable[[Server, str], None]] = {}
    if not args.skip_pt_osc:
        if shutil.which("pt-online-schema-change") is None:
            print(
                "pt-online-schema-change is not installed: `apt-get install -y percona-toolkit` "
                "(or run with --skip-pt-osc)",
                file=sys.stderr,
            )
            return 2
        tools["pt-osc"] = run_pt_osc
    tools["blocking"] = run_blocking

    private = None
    if "binlog" in sources:
        private = _binlog_server(args.buffer_pool_mb)
        args.host, args.port, args.user, args.password = "127.0.0.1", private.port, "root", ""
        args.engine_only = True
    admin = Server(args.host, args.port, args.user, args.password, "")
    conn = pymysql.connect(
        host=args.host, port=args.port, user=args.user, password=args.password, autocommit=True
    )
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{args.schema}`")
        cur.execute(f"CREATE DATABASE `{args.schema}` CHARACTER SET utf8mb4")
        cur.execute("SELECT VERSION()")
        version = (cur.fetchone() or ("?",))[0]
    server = Server(admin.host, admin.port, admin.user, admin.password, args.schema)
    mode = "engine only" if args.engine_only else "full pipeline: submit to completed"
    print(f"server {version}; {args.rows} rows; {args.runs} runs per tool; spirit {mode}; change: {ALTER}\n")
    pipeline = None if args.engine_only else Pipeline(server, args.broker_url)
    spirits: dict[str, Callable[[Server, str], None]] = {}
    if not sources:
        spirits["spirit"] = run_spirit if pipeline is None else pipeline.run
    for source in sources:
        spirits[f"spirit-{source}"] = functools.partial(run_spirit, change_source=source)
    tools = {**spirits, **tools}
    try:
        global SPIRIT_VOLUME
        SPIRIT_VOLUME = args.volume
        if not args.load_only:
            print("without load")
            report("without load", measure(server, tools, args.runs, args.rows, 0))
        if not args.no_load_only:
            print(f"with a fixed write load of {args.write_rate:g}/s")
            report(
                f"with {args.write_rate:g} writes/s",
                measure(server, tools, args.runs, args.rows, args.write_rate),
            )
    finally:
        if pipeline is not None:
            pipeline.close()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{args.schema}`")
        conn.close()
        if private is not None:
            private.kill()
            shutil.rmtree(private.workdir, ignore_errors=True)
    return 0


def _binlog_server(buffer_pool_mb: int) -> Any:
    """A private mariadbd with binary logging (ROW, full images), the bench's buffer pool."""
    from tests.support.servers import BinlogMariaDB

    class BenchBinlogMariaDB(BinlogMariaDB):
        def server_options(self) -> list[str]:
            options = [o for o in super().server_options() if "buffer-pool" not in o]
            return [f"--innodb-buffer-pool-size={buffer_pool_mb}M", *options]

    return BenchBinlogMariaDB(Path(tempfile.mkdtemp(prefix="sb-bench-binlog-")), 1).start()


if __name__ == "__main__":
    sys.exit(main())
