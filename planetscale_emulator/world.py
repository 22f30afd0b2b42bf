"""The emulated PlanetScale database as one object: settings, metadata store and clock.

Every API action runs as a function of the `World` while holding `world.lock`, so actions and
ticks never interleave and each sees a consistent picture. `bootstrap` makes the world exist:
the metadata schema, the production branch `main` and one MariaDB schema per keyspace.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from planetscale_emulator import branch_users, physical
from planetscale_emulator.clock import Clock
from planetscale_emulator.config import MAIN_BRANCH_ID, EmulatorConfig
from planetscale_emulator.errors import not_found
from planetscale_emulator.store import Row, Store


def public_id() -> str:
    return secrets.token_hex(6)


@dataclass
class World:
    config: EmulatorConfig
    store: Store
    clock: Clock

    @classmethod
    def open(cls, config: EmulatorConfig) -> World:
        store = Store(config)
        return cls(config, store, Clock(store))

    @property
    def lock(self) -> Any:
        return self.store.lock

    def now(self) -> float:
        return self.clock.now()

    def event(self, kind: str, subject: str, **detail: Any) -> None:
        self.store.add_event(kind, subject, self.now(), **detail)

    def bootstrap(self) -> int:
        """Create what is missing and count this boot; returns the boot number."""
        with self.lock:
            self.store.bootstrap()
            now = self.now()
            if self.store.one("SELECT id FROM branches WHERE id=%s", (MAIN_BRANCH_ID,)) is None:
                self.store.execute(
                    "INSERT INTO branches (id, public_id, name, parent_branch, production, ready,"
                    " created_at, updated_at) VALUES (%s, %s, %s, NULL, 1, 1, %s, %s)",
                    (MAIN_BRANCH_ID, public_id(), self.config.main_branch, now, now),
                )
            for keyspace in self.config.keyspaces:
                physical.create_database(
                    self.store, self.config.physical_database(MAIN_BRANCH_ID, keyspace)
                )
                self.store.execute(
                    "INSERT IGNORE INTO vschemas (branch_id, keyspace, body) VALUES (%s, %s, %s)",
                    (MAIN_BRANCH_ID, keyspace, "{}"),
                )
            branch_users.ensure_all(self.store, self.config)
            boot = int(self.store.get_setting("boots", "0") or 0) + 1
            self.store.set_setting("boots", str(boot))
            self.event("emulator.boot", self.config.database, boot=boot)
            return boot

    def branch_row(self, name: str) -> Row:
        row = self.store.one("SELECT * FROM branches WHERE name=%s", (name,))
        if row is None:
            raise not_found(f"Branch {name}")
        return row

    def branch_by_id(self, branch_id: int) -> Row | None:
        return self.store.one("SELECT * FROM branches WHERE id=%s", (branch_id,))

    def deploy_request_row(self, number: int) -> Row:
        row = self.store.one("SELECT * FROM deploy_requests WHERE number=%s", (number,))
        if row is None:
            raise not_found(f"Deploy request {number}")
        return row

    def branch_tables(self, branch_id: int) -> dict[str, dict[str, str]]:
        return {
            ks: physical.tables(self.store, self.config.physical_database(branch_id, ks))
            for ks in self.config.keyspaces
        }

    def branch_vschemas(self, branch_id: int) -> dict[str, str]:
        rows = self.store.query(
            "SELECT keyspace, body FROM vschemas WHERE branch_id=%s", (branch_id,)
        )
        found = {str(r["keyspace"]): str(r["body"]) for r in rows}
        return {ks: found.get(ks, "{}") for ks in self.config.keyspaces}
