"""How long `schemabot plan --schema-dir` takes on a schema of 100 tables (issue 13).

The live schema has 100 tables of 6 to 10 columns and 2 to 3 indexes (1,000 rows each); the schema
directory has 100 files: 34 add a column (INSTANT, tables 0, 3, ... 99), 33 widen a column's type
(COPY, tables 1, 4, ... 97) and 33 are unchanged. The plan loads the files into a scratch schema,
diffs all 100, rehearses the 67 ALTERs on empty copies and lints them. Medians of the runs, on the
machine's MariaDB.

    .venv/bin/python bench/plan.py [--tables 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script: import the repository's packages from its root, not from bench/.
sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.targets import Target
from schemabot.planning.planner import Planner
from tests.support.mariadb import connect, fresh_schema, mysql_dsn


def table_sql(i: int, changed: bool) -> str:
    extra = 6 + i % 5
    cols = [f"c{j} VARCHAR(40) NOT NULL DEFAULT ''" if j % 2 else f"c{j} INT NULL" for j in range(extra)]
    if changed and i % 3 == 0:
        cols.append("added INT NULL")
    if changed and i % 3 == 1:
        cols[1] = "c1 VARCHAR(40) NOT NULL DEFAULT ''"
        cols[0] = "c0 BIGINT NULL"
    keys = ["KEY k1 (c1)", "KEY k2 (c0, c1)"] + (["KEY k3 (c2)"] if i % 2 else [])
    return f"CREATE TABLE t{i:03d} (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, " + ", ".join(
        cols + keys
    ) + ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with fresh_schema("bench_plan") as schema, tempfile.TemporaryDirectory() as files:
        conn = connect(schema)
        with conn.cursor() as cur:
            for i in range(args.tables):
                cur.execute(table_sql(i, changed=False))
                cur.execute(f"INSERT INTO t{i:03d} (c0) SELECT seq FROM seq_1_to_1000")
            for i in range(args.tables):
                Path(files, f"t{i:03d}.sql").write_text(table_sql(i, changed=True) + ";\n")
        conn.close()
        planner = Planner(Target("bench", mysql_dsn(schema)))
        times = []
        for run in range(args.runs):
            started = time.monotonic()
            plan = planner.plan_schema_dir(files)
            times.append(time.monotonic() - started)
            kinds = {a: sum(1 for s in plan.statements if s.algorithm == a) for a in ("INSTANT", "COPY")}
            print(f"run {run + 1}: {times[-1]:.2f} s, {len(plan.statements)} statements {kinds}", flush=True)
        print(f"plan of {args.tables} tables: median {statistics.median(times):.2f} s over {args.runs} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
