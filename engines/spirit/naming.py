"""Every name the engine creates on the target, derived from the table (and so from the context).

One operation at a time owns a table (the checkpoint row says which context), so names per table
are enough: `_<table>_new` is the shadow, `_<table>_old` what the source becomes at cutover, and
the three triggers are `_<table>_ins|_upd|_del`. A table name leaves room for these affixes only
when it is at most `MAX_TABLE_NAME` characters long (preflight `table_name` checks it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

CHECKPOINT_TABLE = "_sb_spirit_checkpoint"
SENTINEL_TABLE = "_sb_sentinel"
MAX_IDENTIFIER = 64
MAX_TABLE_NAME = MAX_IDENTIFIER - len("__new")


def quote(identifier: str) -> str:
    """Backtick-quote an identifier (MySQL and MariaDB), doubling embedded backticks."""
    return "`" + identifier.replace("`", "``") + "`"


@dataclass(frozen=True)
class TableNames:
    """The names around one source table `schema.table`."""

    schema: str
    table: str

    @property
    def shadow(self) -> str:
        return f"_{self.table}_new"

    @property
    def old(self) -> str:
        return f"_{self.table}_old"

    @property
    def errors(self) -> str:
        """Where the triggers record writes the shadow refused (see triggers.py)."""
        return f"_{self.table}_err"

    @property
    def trigger_insert(self) -> str:
        return f"_{self.table}_ins"

    @property
    def trigger_update(self) -> str:
        return f"_{self.table}_upd"

    @property
    def trigger_delete(self) -> str:
        return f"_{self.table}_del"

    @property
    def triggers(self) -> tuple[str, str, str]:
        # Creation order matters: delete first, insert last (see triggers.py).
        return (self.trigger_delete, self.trigger_update, self.trigger_insert)

    @property
    def lock_name(self) -> str:
        """The GET_LOCK name proving single ownership of this table.

        MySQL 8 refuses user lock names longer than 64 characters, so the table is hashed.
        """
        digest = hashlib.sha1(f"{self.schema}.{self.table}".encode()).hexdigest()[:40]
        return f"sb_spirit_{digest}"

    def q(self, name: str | None = None) -> str:
        """`schema`.`name` (the source table when `name` is None)."""
        return f"{quote(self.schema)}.{quote(name if name is not None else self.table)}"

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.table}"
