"""One MariaDB/MySQL user per branch password, with grants on that branch's schemas only.

The branch proxy (mysql_proxy.py) logs in to the backing server as the password's own user, never
as the emulator's DSN user: a branch password can then reach its branch's keyspaces and nothing
else (not `mysql.user`, not the emulator's metadata, not another branch, not a schemabot state
database on the same server). The user has the password's name and secret, is created with the
password and dropped with it or with its branch. The emulator's DSN user needs CREATE USER and
GRANT OPTION for this.

Roles map to privileges on the branch's schemas: reader = SELECT; writer/readwriter = DML;
admin = everything on those schemas (DDL, which the planetscale engine runs on its branches).
"""

from __future__ import annotations

from planetscale_emulator.config import EmulatorConfig
from planetscale_emulator.store import Store

# Host parts: '%' for TCP clients, 'localhost' so that an anonymous ''@'localhost' cannot shadow
# the user when the emulator reaches the server over its socket.
HOSTS = ("%", "localhost")
PRIVILEGES = {
    "reader": "SELECT, SHOW VIEW",
    "writer": "SELECT, INSERT, UPDATE, DELETE, SHOW VIEW",
    "readwriter": "SELECT, INSERT, UPDATE, DELETE, SHOW VIEW",
    "admin": "ALL PRIVILEGES",
}


def _grant_pattern(schema: str) -> str:
    """A schema name as a GRANT pattern: `_` and `%` are wildcards there and must be escaped."""
    return schema.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")


def _is_mysql(store: Store) -> bool:
    row = store.one("SELECT VERSION() AS v")
    return row is not None and "mariadb" not in str(row["v"]).lower()


def create(
    store: Store, config: EmulatorConfig, username: str, secret: str, branch_id: int, role: str
) -> None:
    """Create (or re-create) the user of a branch password with grants on its branch only."""
    # The proxy speaks mysql_native_password only (MySQL 8 defaults to caching_sha2_password).
    plugin = "WITH mysql_native_password " if _is_mysql(store) else ""
    privileges = PRIVILEGES.get(role, PRIVILEGES["reader"])
    for host in HOSTS:
        store.execute("DROP USER IF EXISTS %s@%s", (username, host))
        store.execute(f"CREATE USER %s@%s IDENTIFIED {plugin}BY %s", (username, host, secret))
        for keyspace in config.keyspaces:
            pattern = _grant_pattern(config.physical_database(branch_id, keyspace))
            store.execute(f"GRANT {privileges} ON `{pattern}`.* TO %s@%s", (username, host))


def drop(store: Store, username: str) -> None:
    for host in HOSTS:
        store.execute("DROP USER IF EXISTS %s@%s", (username, host))


def ensure_all(store: Store, config: EmulatorConfig) -> None:
    """At start-up: every stored password gets its user, as it is now (idempotent; passwords
    stored by an older emulator get one). Reads nothing of the `mysql` schema."""
    for row in store.query("SELECT username, plain_text, branch_id, role FROM passwords"):
        create(
            store,
            config,
            str(row["username"]),
            str(row["plain_text"]),
            int(row["branch_id"]),
            str(row["role"]),
        )
