"""How long `schemabot plan --schema-dir` takes for a Vitess target of 100 tables (issue 13 §5),
against the PlanetScale emulator (a real process; it ticks every 0.1 s, as a provider would
compute a deploy request's diff on its own time).

The same schema as bench/plan.py (100 tables: 34 add a column, 33 change a type, 33 are
unchanged) in keyspace `commerce` of main, and the same 100 files. The first plan creates
the plan branch and opens the deploy request; the later ones reuse both. Medians on this machine.

    .venv/bin/python bench/plan_vitess.py [--tables 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.plan import table_sql
from schemabot.planning.planner import Planner
from tests.support.emulator_process import EmulatorProcess


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    emulator = EmulatorProcess(tick_interval=0.1)
    try:
        emulator.start()
        with tempfile.TemporaryDirectory() as files:
            (Path(files) / "commerce").mkdir()
            for i in range(args.tables):
                emulator.sql("commerce", table_sql(i, changed=False))
                Path(files, "commerce", f"t{i:03d}.sql").write_text(table_sql(i, changed=True) + ";\n")
            planner = Planner(emulator.target("bench"))
            times: list[float] = []
            for run in range(args.runs + 1):
                started = time.monotonic()
                plan = planner.plan_schema_dir(files)
                took = time.monotonic() - started
                reused = bool(plan.vitess and plan.vitess["branch_reused"])
                print(f"run {run}: {took:.2f} s, {len(plan.statements)} statements, branch reused: {reused}")
                if run:
                    times.append(took)
            median = statistics.median(times)
            print(f"first plan (new branch): run 0; median of {args.runs} repeats (reused): {median:.2f} s")
    finally:
        emulator.stop()
        emulator.drop_schemas()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
