"""Small steps that orchestration scenario tests share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from schemabot.api import ApplyStatus, ChangeSet, Client
from schemabot.runtime import Runtime
from schemabot.storage import reads
from schemabot.storage.models import ApplyOperation, Task
from tests.support.harness import RecordingDispatcher, deliver


def client(rt: Runtime) -> Client:
    return Client(runtime=rt)


def submit(
    rt: Runtime,
    engine: str = "fake",
    changes: Sequence[ChangeSet] | None = None,
    target: str = "fake",
    **options: Any,
) -> str:
    changes = changes or [ChangeSet(namespace="app", ddl=["ALTER TABLE t1 ADD COLUMN c INT"])]
    return client(rt).submit_apply(target, engine, changes, **options).apply_id


def status(rt: Runtime, apply_id: str) -> ApplyStatus:
    return client(rt).get_apply(apply_id)


def run_until(
    rt: Runtime, dispatcher: RecordingDispatcher, apply_id: str, *states: str, max_messages: int = 300
) -> ApplyStatus:
    """Deliver messages until the apply reaches one of `states`."""
    for _ in range(max_messages):
        st = status(rt, apply_id)
        if st.state in states:
            return st
        message = dispatcher.take()
        assert message is not None, f"no message left while {apply_id} is {st.state}"
        deliver(rt, message)
    raise AssertionError(f"{apply_id} never reached {states}; it is {status(rt, apply_id).state}")


def operation(rt: Runtime, apply_id: str) -> ApplyOperation:
    ops = reads.snapshot(rt.db, apply_id).operations
    assert len(ops) == 1
    return ops[0]


def set_task_operation(rt: Runtime, apply_id: str, operation_id: str | None, first_only: bool = True) -> None:
    def work(session: Any) -> None:
        query = sa.select(Task).where(Task.apply_id == apply_id).order_by(Task.seq)
        tasks = list(session.scalars(query))
        for task in tasks[:1] if first_only else tasks:
            task.operation_id = operation_id

    rt.db.run(work)


def clear_resume_state(rt: Runtime, apply_id: str) -> None:
    rt.db.run(
        lambda s: s.execute(
            sa.update(ApplyOperation).where(ApplyOperation.apply_id == apply_id).values(resume_context=None)
        )
    )


def set_apply_state(rt: Runtime, apply_id: str, state: str) -> None:
    from schemabot.storage.models import Apply

    rt.db.run(lambda s: s.execute(sa.update(Apply).where(Apply.apply_id == apply_id).values(state=state)))
