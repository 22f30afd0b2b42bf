"""Benchmark: the spirit engine against pt-online-schema-change and a blocking ALTER ... COPY.

    .venv/bin/python bench/online_copy.py [--rows 1000000] [--runs 3] [--write-rate 200]
        [--engine-only] [--shape bench|bench-bigint|narrow] [--copy-lanes N|auto]
        [--compare-lanes 1,4] [--private-server] [--change-source triggers,binlog]
        [--trailing-checksum on|off]
        [--buffer-pool-mb 128] [--autoinc-lock-mode 0|1|2] [--load-only | --no-load-only]
        [--skip-pt-osc]

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

Cases (`--shape`), none of which MariaDB 10.11 can do instantly, so every tool copies the table:
- `bench` (sysbench's shape): `id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, k INT UNSIGNED (indexed,
  random), c CHAR(120), pad CHAR(60)`, about 230 MB for a million rows; the change
  `MODIFY c VARCHAR(130) NOT NULL DEFAULT '', ADD COLUMN d INT NOT NULL DEFAULT 0`.
- `bench-bigint`: the same table, `MODIFY k BIGINT UNSIGNED NOT NULL DEFAULT 0` (INT -> BIGINT).
- `narrow` (the bars' narrower table): `id BIGINT PRIMARY KEY` (no AUTO_INCREMENT, so spirit
  copies in parallel lanes), `a INT, b INT, c VARCHAR(16)`; `MODIFY a BIGINT NOT NULL`.

For spirit the report also gives where the time went, by phase (copy with its trailing checksum,
index build, checksum, cutover), and every tool's rows/s.

`--change-source triggers,binlog` runs spirit once per change source (engine option
`change_source`), side by side with the other tools (`spirit-triggers`, `spirit-binlog`; with
`--compare-lanes` also `spirit-triggers-L1`, ...). The binlog source needs binary logging in ROW
format with full row images, which the shared server does not have: with `binlog` among the
sources every tool runs on a private `mariadbd` started with it (bench/private_server.py, as
`--private-server`: CPU seconds per run, every deadlock), so all tools pay for binary logging
alike. `--buffer-pool-mb` sizes a private server's buffer pool (default 128, the shared server's);
`--autoinc-lock-mode` sets its `innodb_autoinc_lock_mode` (MariaDB's default 1; 2 is MySQL 8's,
under which spirit copies a table with an AUTO_INCREMENT column in lanes too).
Under load the report gives, per tool, the failed writes, the worst and the 99th percentile write
latency.
"""

# ruff: noqa: E402  (the import path is fixed before the imports; see below)
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script: import the repository's packages (engines, schemabot, tests) from its root,
# not from bench/.
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
from dataclasses import dataclass

import pymysql

from bench import private_server
from devservers.servers import start_celery, stop_process, wait_for
from engines.base import ApplyOptions, EngineState, NamespaceChange, OperationRequest, TableChange
from engines.spirit import SpiritEngine
from engines.targets import Target
from schemabot.api import ChangeSet, Client
from schemabot.migrate import upgrade
from schemabot.settings import Settings


@dataclass(frozen=True)
class Shape:
    """A table, how to fill it, the change, and the load's writes on it."""

    name: str
    create: str
    fill: str
    """`SELECT` of the rows from MariaDB's seq_1_to_{rows} (the columns of `columns`)."""
    alter: str
    columns: tuple[str, ...]
    """Every column, the key first; the load writes them all and the check compares them."""
    update: str
    """The load's `SET` clause of an update."""

    def insert_values(self, key: int, n: int) -> tuple[object, ...]:
        if self.name == "narrow":
            return (n, key, key * 2, f"c{key}")
        return (n, key, f"c{key}", "load")


BENCH_TABLE = (
    "CREATE TABLE {name} (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "k INT UNSIGNED NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', "
    "pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k)) ENGINE=InnoDB"
)
BENCH_FILL = (
    "SELECT seq, FLOOR(RAND() * {rows}), "
    "CONCAT(MD5(seq), MD5(seq + 1), MD5(seq + 2), LEFT(MD5(seq + 3), 24)), "
    "CONCAT(MD5(seq + 4), LEFT(MD5(seq + 5), 28)) FROM seq_1_to_{rows}"
)
SHAPES = {
    "bench": Shape(
        "bench",
        BENCH_TABLE,
        BENCH_FILL,
        "MODIFY c VARCHAR(130) NOT NULL DEFAULT '', ADD COLUMN d INT NOT NULL DEFAULT 0",
        ("id", "k", "c", "pad"),
        "k = k + 1, pad = 'upd'",
    ),
    "bench-bigint": Shape(
        "bench-bigint",
        BENCH_TABLE,
        BENCH_FILL,
        "MODIFY k BIGINT UNSIGNED NOT NULL DEFAULT 0",
        ("id", "k", "c", "pad"),
        "k = k + 1, pad = 'upd'",
    ),
    "narrow": Shape(
        "narrow",
        "CREATE TABLE {name} (id BIGINT NOT NULL PRIMARY KEY, a INT NOT NULL, b INT NOT NULL, "
        "c VARCHAR(16) NOT NULL) ENGINE=InnoDB",
        "SELECT seq, FLOOR(RAND() * 2000000000), seq % 1000, CONCAT('v', seq) "
        "FROM seq_1_to_{rows}",
        "MODIFY a BIGINT NOT NULL",
        ("id", "a", "b", "c"),
        "a = a + 1, b = b + 1",
    ),
}
SHAPE = SHAPES["bench"]  # --shape
CHANGE_SOURCES = ("triggers", "binlog", "auto")  # spirit's engine option change_source


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
        cur.execute(SHAPE.create.format(name="t"))
        cur.execute(f"INSERT INTO t {SHAPE.fill.format(rows=rows)}")
        cur.execute(SHAPE.create.format(name="expected"))
        cur.execute("INSERT INTO expected SELECT * FROM t")
    conn.close()


SPIRIT_VOLUME: int | None = None  # --volume (engine-only runs)
SPIRIT_OPTIONS: dict[str, object] = {}  # --copy-lanes
PRIVATE: private_server.PrivateServer | None = None  # --private-server
DEADLOCK_OFFSET = 0
SERVER_CPU: dict[str, list[float]] = {}  # the private server's CPU seconds per run, per tool
SPIRIT_PHASES: dict[str, list[dict[str, float]]] = {}  # per tool: seconds per phase of each run
PHASES = ("setup", "copy", "index build", "checksum", "cutover", "other")


class PhaseClock:
    """Where an engine-only spirit run's time goes: the engine's phase functions are wrapped with
    timers for the run (the engine calls them through their modules). `other` is the rest: each
    step's validation of triggers and definitions, locks, progress bookkeeping."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._saved: list[tuple[object, str, object]] = []

    def _wrap(self, owner: object, attribute: str, phase: str) -> None:
        original = getattr(owner, attribute)

        def timed(*args: object, **kwargs: object) -> object:
            t0 = time.monotonic()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[phase] = self.seconds.get(phase, 0.0) + time.monotonic() - t0

        self._saved.append((owner, attribute, original))
        setattr(owner, attribute, timed)

    def __enter__(self) -> PhaseClock:
        from engines.spirit import earlybuild, runner
        from engines.spirit import engine as engine_module
        from engines.spirit.phases import cutting_over

        self._wrap(runner, "copy", "copy")
        self._wrap(runner, "build_indexes", "index build")
        # A build alongside the copy (earlybuild.py) costs only the wait for it after the copy.
        self._wrap(earlybuild.Builder, "wait", "index build")
        self._wrap(runner, "verify", "checksum")
        self._wrap(cutting_over, "begin", "cutover")
        self._wrap(engine_module.SpiritEngine, "apply", "setup")
        return self

    def __exit__(self, *_: object) -> None:
        for owner, attribute, original in reversed(self._saved):
            setattr(owner, attribute, original)


def spirit_name(change_source: str | None = None, lanes: int | None = None) -> str:
    """The report's name of a spirit variant: `spirit`, `spirit-binlog`, `spirit-triggers-L1`."""
    return (
        "spirit"
        + (f"-{change_source}" if change_source else "")
        + (f"-L{lanes}" if lanes is not None else "")
    )


def run_spirit(
    server: Server, context: str, lanes: int | None = None, change_source: str | None = None
) -> None:
    """One engine-only run; `lanes` overrides `copy_lanes` (--compare-lanes), `change_source`
    sets the engine option of that name (--change-source)."""
    extra = spirit_options(change_source)
    if lanes is not None:
        extra["copy_lanes"] = lanes
    engine = SpiritEngine(Target("bench", server.dsn))
    request = OperationRequest(
        context=context,
        changes=[
            NamespaceChange(server.schema, (TableChange("t", f"ALTER TABLE t {SHAPE.alter}", "alter"),))
        ],
        options=ApplyOptions(volume=SPIRIT_VOLUME, extra=extra),
    )
    started = time.monotonic()
    message = ""
    builds: list[str] = []  # the deferred indexes' build alongside the copy, as the events say
    try:
        with PhaseClock() as clock:
            applied = engine.apply(request)
            if not applied.accepted:
                raise RuntimeError(f"apply not accepted: {applied.message}")
            # After "set up N table(s); ": each table's change source and why (checks that
            # --change-source took).
            chosen = applied.message.partition("; ")[2]
            while True:
                result = engine.progress(request)
                # The lane plan: the step's event when it is chosen (a short copy may end
                # within that step), else the table's status while it copies.
                lanes_chosen = [e.split(": ", 1)[-1] for e in result.events if "copying in" in e]
                builds.extend(e.split(": ", 1)[-1] for e in result.events if "alongside" in e)
                if lanes_chosen:
                    message = lanes_chosen[0]
                elif result.tables and "lane" in result.tables[0].message:
                    message = result.tables[0].message
                if result.state == EngineState.COMPLETED:
                    break
    finally:
        engine.close()
    phases = dict(clock.seconds)
    phases["other"] = max(0.0, time.monotonic() - started - sum(phases.values()))
    SPIRIT_PHASES.setdefault(spirit_name(change_source, lanes), []).append(phases)
    shown = f" [{message.split(' (')[0]}]" if message else ""
    if chosen:
        shown += f" [{chosen if len(chosen) <= 100 else chosen[:97] + '...'}]"
    print(
        "            spirit phases: "
        + ", ".join(f"{k} {phases[k]:.2f}s" for k in PHASES if k in phases)
        + shown
    )
    for build in builds:
        print(f"            {build}")


def spirit_options(change_source: str | None) -> dict[str, object]:
    """The engine options of a spirit run: --copy-lanes's, and the change source if one is set
    (none: the engine's default, `auto`, which takes the binlog when the server logs in ROW)."""
    extra = dict(SPIRIT_OPTIONS)
    if change_source:
        extra["change_source"] = change_source
    return extra


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

    def run(self, server: Server, context: str, change_source: str | None = None) -> None:
        apply_id = self.client.submit_apply(
            "bench",
            "spirit",
            [ChangeSet([f"ALTER TABLE t {SHAPE.alter}"], server.schema)],
            engine_options=spirit_options(change_source) or None,
        ).apply_id
        final = self.client.wait(apply_id, interval=0.05)
        if final.state != "completed":
            raise RuntimeError(f"{apply_id} ended {final.state}: {final.error}")
        # The audit log keeps the engine's apply message: which change source it took.
        notes = [
            e.message.split("; ", 1)[1]
            for e in self.client.log(apply_id)
            if e.message and "changes via" in e.message and "; " in e.message
        ]
        if notes:
            print(f"            spirit: [{notes[0][:100]}]")

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
        ["pt-online-schema-change", "--alter", SHAPE.alter, dsn, "--execute", "--recursion-method=none"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def run_blocking(server: Server, _: str) -> None:
    conn = server.connect()
    with conn.cursor() as cur:
        cur.execute(f"ALTER TABLE t {SHAPE.alter}, ALGORITHM=COPY")
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
                                f"INSERT INTO {table} ({', '.join(SHAPE.columns)}) "
                                f"VALUES ({', '.join(['%s'] * len(SHAPE.columns))})",
                                SHAPE.insert_values(key, next_id),
                            )
                        elif op == "update":
                            cur.execute(f"UPDATE {table} SET {SHAPE.update} WHERE id = %s", (key,))
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
        # One scan of each side first: equal counts and row sums mean no difference, and spare
        # the joins, which on a table twice the buffer pool take a minute of random reads.
        every = ", ".join(SHAPE.columns)
        sums = []
        for table in ("t", "expected"):
            cur.execute(f"SELECT COUNT(*), SUM(CRC32(CONCAT_WS('#', {every}))) FROM {table}")
            sums.append(cur.fetchone())
        if sums[0] == sums[1]:
            conn.close()
            return {"missing": 0, "extra": 0, "differing": 0}
        for name, sql in {
            "missing": "SELECT COUNT(*) FROM expected e LEFT JOIN t ON t.id = e.id WHERE t.id IS NULL",
            "extra": "SELECT COUNT(*) FROM t LEFT JOIN expected e ON t.id = e.id WHERE e.id IS NULL",
            "differing": "SELECT COUNT(*) FROM expected e JOIN t ON t.id = e.id WHERE NOT ("
            + " AND ".join(f"e.{c} <=> t.{c}" for c in SHAPE.columns[1:])
            + ")",
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
    width = max(len(name) for name in tools)
    for run in range(runs):
        for name, tool in tools.items():
            fill(server, rows)
            load_label = f" under {rate:g} writes/s" if rate else ""
            cpu_before = PRIVATE.cpu_seconds() if PRIVATE is not None else 0.0
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
            cpu = ""
            if PRIVATE is not None:
                used = PRIVATE.cpu_seconds() - cpu_before
                SERVER_CPU.setdefault(name, []).append(used)
                cpu = f" (server CPU {used:.2f}s)"
            lost = differences(server)
            times[name].append(elapsed)
            print(
                f"  {name:{width}s} run {run + 1}{load_label}: {elapsed:6.2f}s{cpu}{writes}; "
                f"rows lost: {lost}"
            )
            if any(lost.values()):
                print(f"  !! {name} lost or changed rows: {lost}")
            if PRIVATE is not None:
                global DEADLOCK_OFFSET
                found, DEADLOCK_OFFSET = private_server.read(PRIVATE.error_log, DEADLOCK_OFFSET)
                for line in private_server.summary(found):
                    print(f"      deadlock {line}")
    if rate:
        print(
            f"\n  under {rate:g} writes/s, {runs} runs | writes failed (all runs) | worst write, "
            "median of runs (max) | p99 write, median of runs"
        )
        for name in tools:
            print(
                f"  {name:{width}s} | {sum(failed[name]):5d} | "
                f"{statistics.median(worst[name]):6.0f} ms ({max(worst[name]):.0f}) | "
                f"{statistics.median(p99[name]):6.0f} ms"
            )
    return times


def report(label: str, times: dict[str, list[float]], rows: int) -> None:
    medians = {name: statistics.median(values) for name, values in times.items()}
    width = max(len(name) for name in times)
    print(f"\n{label}: medians ({SHAPE.name}: {SHAPE.alter})")
    for name, median in medians.items():
        cpu = SERVER_CPU.get(name)
        shown = f"  server CPU {statistics.median(cpu):5.2f}s" if cpu else ""
        print(
            f"  {name:{width}s} {median:6.2f}s  {rows / median:9,.0f} rows/s{shown}   "
            f"runs: {', '.join(f'{v:.2f}' for v in times[name])}"
        )
    SERVER_CPU.clear()
    for tool, runs in SPIRIT_PHASES.items():
        names = [n for n in PHASES if any(n in p for p in runs)]
        parts = [f"{n} {statistics.median(p.get(n, 0.0) for p in runs):.2f}s" for n in names]
        copy_s = statistics.median(p.get("copy", 0.0) for p in runs)
        print(
            f"  {tool} by phase (medians): " + ", ".join(parts)
            + (f"; copy {rows / copy_s:,.0f} rows/s" if copy_s else "")
        )
    SPIRIT_PHASES.clear()
    spirits = [n for n in times if n.startswith("spirit")]
    baselines = [n for n in times if not n.startswith("spirit")]
    for name in spirits:
        # The first spirit variant is also paired with the others (lanes, change sources); the
        # rest only with the baselines.
        against = [n for n in times if n != name] if name == spirits[0] else baselines
        for other in against:
            # Runs of one round are next to each other in time: their ratio shares the
            # machine's mood, so its median is steadier than the ratio of medians on a busy
            # machine.
            pairs = [a / b for a, b in zip(times[name], times[other], strict=False) if b]
            if pairs:
                print(
                    f"  {name} / {other}, median of paired runs = "
                    f"{statistics.median(pairs):.2f}x"
                )
    for name in spirits:
        spirit = medians[name]
        if "pt-osc" in medians:
            print(f"  {name} / pt-osc   = {spirit / medians['pt-osc']:.2f}x  (goal <= 0.7x)")
        if "blocking" in medians:
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
    parser.add_argument("--shape", choices=sorted(SHAPES), default="bench", help="table and change")
    parser.add_argument("--copy-lanes", help="spirit's engine option copy_lanes (a number or auto)")
    parser.add_argument(
        "--index-build-at",
        help="spirit's engine option index_build_at (the share copied when the deferred "
        "indexes' build starts, or auto; the engine's default: after the copy)",
    )
    parser.add_argument(
        "--trailing-checksum",
        choices=["on", "off"],
        help="spirit's engine option trailing_checksum (the engine's default: on)",
    )
    parser.add_argument(
        "--private-server",
        action="store_true",
        help="a private mariadbd: its CPU seconds per run, every deadlock (bench/private_server.py)",
    )
    parser.add_argument(
        "--compare-lanes",
        help="also run spirit with these copy_lanes, e.g. 1,4 (engine-only; tools spirit-L1, ...)",
    )
    parser.add_argument(
        "--change-source",
        default="",
        help="spirit's change source(s), comma-separated: triggers, binlog, auto; one spirit per "
        "source (with binlog: every tool on a private mariadbd with binary logging)",
    )
    parser.add_argument(
        "--buffer-pool-mb",
        type=int,
        default=128,
        help="the private server's buffer pool (--private-server, --change-source binlog)",
    )
    parser.add_argument(
        "--autoinc-lock-mode",
        type=int,
        choices=(0, 1, 2),
        help="the private server's innodb_autoinc_lock_mode (default: the server's, 1)",
    )
    parser.add_argument("--load-only", action="store_true", help="skip the runs without load")
    parser.add_argument("--no-load-only", action="store_true", help="skip the runs under load")
    args = parser.parse_args()
    args.sources = [s.strip() for s in args.change_source.split(",") if s.strip()]
    if any(s not in CHANGE_SOURCES for s in args.sources):
        parser.error(f"--change-source takes {', '.join(CHANGE_SOURCES)}")
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

    global PRIVATE
    binlog = "binlog" in args.sources
    if args.private_server or binlog or args.autoinc_lock_mode is not None:
        private = private_server.PrivateServer(
            buffer_pool_mb=args.buffer_pool_mb, binlog=binlog, autoinc_lock_mode=args.autoinc_lock_mode
        )
        PRIVATE = private
        private.start()
        args.host, args.port, args.user, args.password = "127.0.0.1", private.port, "root", ""
        logging = ", binary logging (ROW, full images)" if binlog else ""
        if args.autoinc_lock_mode is not None:
            logging += f", innodb_autoinc_lock_mode={args.autoinc_lock_mode}"
        print(
            f"a private mariadbd ({args.buffer_pool_mb} MB buffer pool{logging}; CPU time per "
            f"run, every deadlock logged): {private.workdir}"
        )
    try:
        return _run(args, tools)
    finally:
        if PRIVATE is not None:
            PRIVATE.stop()
            shutil.rmtree(PRIVATE.workdir, ignore_errors=True)


def _run(args: argparse.Namespace, tools: dict[str, Callable[[Server, str], None]]) -> int:
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
    global SHAPE
    SHAPE = SHAPES[args.shape]
    if args.copy_lanes:
        SPIRIT_OPTIONS["copy_lanes"] = "auto" if args.copy_lanes == "auto" else int(args.copy_lanes)
    if args.trailing_checksum:
        SPIRIT_OPTIONS["trailing_checksum"] = args.trailing_checksum == "on"
    if args.index_build_at is not None:
        at = args.index_build_at
        SPIRIT_OPTIONS["index_build_at"] = at if at == "auto" else float(at)
    print(
        f"server {version}; {args.rows} rows; {args.runs} runs per tool; spirit {mode}; "
        f"{SHAPE.name}: {SHAPE.alter}; spirit options {SPIRIT_OPTIONS or 'default'}\n"
    )
    pipeline = None if args.engine_only else Pipeline(server, args.broker_url)
    spirits: dict[str, Callable[[Server, str], None]] = {}
    sources: list[str | None] = list(args.sources) or [None]
    for source in sources:
        run = run_spirit if pipeline is None else pipeline.run
        spirits[spirit_name(source)] = functools.partial(run, change_source=source)
    if args.compare_lanes and pipeline is None:
        for source in sources:
            for count in (int(n) for n in args.compare_lanes.split(",")):
                spirits[spirit_name(source, count)] = functools.partial(
                    run_spirit, lanes=count, change_source=source
                )
    tools = {**spirits, **tools}
    try:
        global SPIRIT_VOLUME
        SPIRIT_VOLUME = args.volume
        if not args.load_only:
            print("without load")
            report("without load", measure(server, tools, args.runs, args.rows, 0), args.rows)
        if not args.no_load_only:
            print(f"with a fixed write load of {args.write_rate:g}/s")
            report(
                f"with {args.write_rate:g} writes/s",
                measure(server, tools, args.runs, args.rows, args.write_rate),
                args.rows,
            )
    finally:
        if pipeline is not None:
            pipeline.close()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{args.schema}`")
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
