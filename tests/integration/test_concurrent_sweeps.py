"""docs/architecture.md §10 S18 in process, on MariaDB and PostgreSQL state databases: several sweeps at once
claim each orphan exactly once (the lease compare-and-swap; docs/architecture.md §4)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemabot.api import ChangeSet, Client
from schemabot.migrate import upgrade
from schemabot.runtime import Runtime
from schemabot.settings import Settings
from schemabot.storage.database import Database
from schemabot.storage.sweep import Claimed, claim_orphans
from tests.conftest import FAKE_PLUGINS, mariadb_url
from tests.support.harness import RecordingDispatcher
from tests.support.mariadb import fresh_schema
from tests.support.postgres import fresh_database, migrated_template, pg_url

pytestmark = pytest.mark.integration
SWEEPERS, APPLIES = 4, 24


@pytest.fixture(params=["mariadb", "postgresql"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "postgresql":
        with fresh_database("sbt_sweep", template=migrated_template()) as database:
            yield pg_url(database)
        return
    with fresh_schema("sbt_sweep") as schema:
        upgrade(database_url=mariadb_url(schema))
        yield mariadb_url(schema)


def test_concurrent_sweeps_claim_each_orphan_once(url: str, tmp_path: Path) -> None:
    settings = Settings(
        database_url=url,
        engine_plugins=FAKE_PLUGINS,
        targets={"fake": f"fake://{tmp_path / 'fake.db'}"},
        start_grace=0.0,
    )
    producer_db = Database(url)
    client = Client(runtime=Runtime(settings, producer_db, RecordingDispatcher(), owner="producer"))
    ids = {
        client.submit_apply("fake", "fake", [ChangeSet([f"ALTER TABLE t{i} ADD c INT"], "app")]).apply_id
        for i in range(APPLIES)
    }
    barrier = threading.Barrier(SWEEPERS)
    results: list[list[Claimed]] = [[] for _ in range(SWEEPERS)]
    errors: list[BaseException] = []

    def sweep(n: int) -> None:
        db = Database(url)
        try:
            barrier.wait(30)
            for _ in range(3):  # a few rounds each, racing the others
                results[n].extend(
                    claim_orphans(db, owner=f"sweeper-{n}", ttl=60, start_grace=0, retry_budget=5)
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=sweep, args=(n,)) for n in range(SWEEPERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    producer_db.dispose()
    assert not errors, errors
    claims = Counter(c.apply_id for r in results for c in r)
    assert set(claims) == ids and set(claims.values()) == {1}, claims
    assert all(c.token == 1 and c.reason == "unstarted" for r in results for c in r)


def test_concurrent_sweeps_expire_each_spent_retryable_once(url: str, tmp_path: Path) -> None:
    """Budget expiry under several sweeps at once: each spent `failed_retryable` apply becomes
    `failed` once, with one audit entry (rows are taken with FOR UPDATE SKIP LOCKED, PostgreSQL
    included)."""
    import sqlalchemy as sa

    from schemabot.storage.models import Apply, ApplyLog
    from schemabot.storage.sweep import expire_retryables

    settings = Settings(
        database_url=url, engine_plugins=FAKE_PLUGINS, targets={"fake": f"fake://{tmp_path / 'f.db'}"}
    )
    producer_db = Database(url)
    client = Client(runtime=Runtime(settings, producer_db, RecordingDispatcher(), owner="producer"))
    ids = {
        client.submit_apply("fake", "fake", [ChangeSet([f"ALTER TABLE t{i} ADD c INT"], "app")]).apply_id
        for i in range(APPLIES)
    }
    producer_db.run(
        lambda s: s.execute(
            sa.update(Apply).values(
                state="failed_retryable", attempt=5, lease_expires_at=None, lease_owner=None
            )
        )
    )
    barrier = threading.Barrier(SWEEPERS)
    expired: list[str] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        db = Database(url)
        try:
            barrier.wait(30)
            for _ in range(3):
                expired.extend(expire_retryables(db, retry_budget=5, max_age=86400))
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=sweep) for _ in range(SWEEPERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    entries = producer_db.run(
        lambda s: list(
            s.scalars(
                sa.select(ApplyLog.apply_id).where(ApplyLog.event == "state", ApplyLog.new_state == "failed")
            )
        ),
        write=False,
    )
    producer_db.dispose()
    assert not errors, errors
    assert Counter(expired) == Counter(ids), Counter(expired)
    assert Counter(entries) == Counter(ids), Counter(entries)
