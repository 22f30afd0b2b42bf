"""A worker process for the tests: apply, then progress steps until completed, as a Celery
worker would. Hooks let a test make the process die (SIGKILL itself) at a precise point."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any

from engines.base import ApplyOptions, EngineState, NamespaceChange, OperationRequest, TableChange
from engines.spirit import SpiritEngine, checkpoint, cutover, runner, setup
from engines.spirit.checkpoint import Phase
from engines.spirit.phases import cutting_over
from engines.targets import Target


def _die(*_: Any, **__: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(spec: dict[str, Any]) -> None:
    by_schema: dict[str, list[TableChange]] = {}
    for schema, table, ddl in spec["changes"]:
        by_schema.setdefault(schema, []).append(TableChange(table, ddl, ddl.split()[0].lower()))
    req = OperationRequest(
        context=spec["context"],
        changes=[NamespaceChange(s, tuple(t)) for s, t in by_schema.items()],
        options=ApplyOptions(defer_cutover=spec["defer_cutover"], extra=spec["extra"]),
        step_budget=spec["step_budget"],
    )
    hooks = spec["hooks"]
    if hooks.get("die_before_rename"):
        cutover.rename_with_retries = _die  # type: ignore[assignment]
    if hooks.get("die_after_rename"):
        cutting_over.finish = _die  # type: ignore[assignment]
    if hooks.get("die_after_setup"):
        original = setup.start_fresh

        def start_then_die(*args: Any, **kwargs: Any) -> Any:
            original(*args, **kwargs)
            _die()

        setup.start_fresh = start_then_die  # type: ignore[assignment]
    if hooks.get("die_mid_copy_after"):
        # SIGKILL inside the chunk transaction of the Nth copied chunk, before its COMMIT.
        chunks = [0]
        original_save = checkpoint.save

        def save_then_die(cur: Any, cp: Any) -> None:
            original_save(cur, cp)
            # A chunk's save moves the copy on (one watermark, or a lane's: rows_copied).
            if cp.phase == Phase.COPY and (cp.copy_watermark is not None or cp.rows_copied):
                chunks[0] += 1
                if chunks[0] >= int(hooks["die_mid_copy_after"]):
                    _die()

        checkpoint.save = save_then_die  # type: ignore[assignment]
    if hooks.get("die_mid_binlog_apply_after"):
        # SIGKILL inside the transaction of the Nth batch of replayed binlog events, after the
        # shadow writes and the new position, before the COMMIT (binlogsource.py).
        applied = [0]
        last: list[Any] = [None]
        save_before = checkpoint.save

        def save_then_die_in_replay(cur: Any, cp: Any) -> None:
            save_before(cur, cp)
            if cp.change_source != "binlog":
                return
            if last[0] is not None and cp.binlog_position != last[0]:
                applied[0] += 1
                if applied[0] >= int(hooks["die_mid_binlog_apply_after"]):
                    _die()
            last[0] = cp.binlog_position

        checkpoint.save = save_then_die_in_replay  # type: ignore[assignment]
    if hooks.get("die_mid_index_build_after") is not None:
        # SIGKILL while the deferred indexes are built (deferred.py), the ALTER in flight; if
        # the server finishes first, die anyway before the build is recorded.
        original_build = runner.build

        def build_and_die(*args: Any, **kwargs: Any) -> int:
            threading.Timer(float(hooks["die_mid_index_build_after"]), _die).start()
            original_build(*args, **kwargs)
            time.sleep(60)
            return 0

        runner.build = build_and_die  # type: ignore[assignment]
    eng = SpiritEngine(Target("worker", spec["dsn"]))
    result = eng.apply(req)
    print(json.dumps({"apply": result.message}), flush=True)
    while True:
        progress = eng.progress(req)
        waiting = progress.state == EngineState.WAITING_FOR_CUTOVER
        if progress.state == EngineState.COMPLETED or (waiting and hooks.get("stop_when_waiting")):
            break
        time.sleep(spec["pause"])
    print(json.dumps({"state": str(progress.state)}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
