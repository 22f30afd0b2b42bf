"""What one emulator process serves and where it keeps its data.

The emulator serves exactly one organization and one database (PlanetScale's unit of a Vitess
cluster), with a fixed set of keyspaces. Every MariaDB schema it creates starts with `db_prefix`,
so several emulators (or test runs) can share one server without seeing each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engines.targets import MySQLAddress, parse_mysql_dsn

# Keyspace and branch names as PlanetScale accepts them. Keyspaces start with a letter so that
# the physical names below can never collide (see `physical_database`).
KEYSPACE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
BRANCH_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PREFIX_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,23}$")

MAIN_BRANCH_ID = 1


@dataclass(frozen=True)
class EmulatorConfig:
    """Settings of one emulator process; all of them come from the command line."""

    mysql_dsn: str = field(repr=False)
    org: str = "schemabot"
    database: str = "app"
    keyspaces: tuple[str, ...] = ("app",)
    db_prefix: str = "psemu"
    host: str = "127.0.0.1"
    port: int = 8980
    mysql_port: int = 0
    main_branch: str = "main"
    tick_interval: float = 1.0
    copy_ticks: int = 3
    revert_window_seconds: float = 1800.0
    # The host clients are told to use (branch passwords' access_host_url, html_url): differs
    # from `host` when listening on 0.0.0.0 in a container.
    advertise_host: str | None = None

    def __post_init__(self) -> None:
        if not PREFIX_NAME.match(self.db_prefix):
            raise ValueError(
                f"db prefix {self.db_prefix!r} must be a letter then up to 23 letters, digits, _"
            )
        if not self.keyspaces:
            raise ValueError("at least one keyspace is needed")
        for keyspace in self.keyspaces:
            if not KEYSPACE_NAME.match(keyspace):
                raise ValueError(f"keyspace {keyspace!r} must match {KEYSPACE_NAME.pattern}")
        if not BRANCH_NAME.match(self.main_branch):
            raise ValueError(f"main branch {self.main_branch!r} is not a valid branch name")
        if self.copy_ticks < 1:
            raise ValueError("copy_ticks must be at least 1")

    @property
    def public_host(self) -> str:
        return self.advertise_host or self.host

    @property
    def mysql(self) -> MySQLAddress:
        return parse_mysql_dsn(self.mysql_dsn)

    @property
    def meta_schema(self) -> str:
        """The schema holding the emulator's own metadata (branches, deploy requests...)."""
        return f"{self.db_prefix}__meta"

    def physical_database(self, branch_id: int, keyspace: str) -> str:
        """The MariaDB schema that holds `keyspace` on one branch.

        Main's keyspaces get the readable `<prefix>_<keyspace>`; other branches
        `<prefix>__b<id>_<keyspace>`. Keyspaces start with a letter, so a double underscore never
        belongs to main and the metadata schema `<prefix>__meta` never collides either.
        """
        if branch_id == MAIN_BRANCH_ID:
            return f"{self.db_prefix}_{keyspace}"
        return f"{self.db_prefix}__b{branch_id}_{keyspace}"
