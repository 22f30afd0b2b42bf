"""Every name the engine creates on the target, derived from the table (and so from the context).

One operation at a time owns a table (the checkpoint row says which context), so names per table
are enough: `_sb_<table>_new` is the shadow, `_sb_<table>_old` what the source becomes at
cutover, `_sb_<table>_err` where the triggers record refused writes, and the three triggers are
`_sb_<table>_ins|_upd|_del`. The `_sb_` prefix is schemabot's own: pt-online-schema-change's and
Spirit's `_<table>_new`, gh-ost's `_<table>_gho`, an application's `_<table>_old` are never
touched. Even so, a name of ours is only dropped when the engine can prove it created it (a
checkpoint of this table says a run of ours was there); otherwise preflight refuses
(docs/architecture.md §8 invariant 10). A table name leaves room for these affixes only when it
is at most `MAX_TABLE_NAME` characters long (preflight `table_name` checks it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from engines.mysql.identifiers import quote_ident

CHECKPOINT_TABLE = "_sb_spirit_checkpoint"
SENTINEL_TABLE = "_sb_sentinel"
MAX_IDENTIFIER = 64
PREFIX = "_sb_"
MAX_TABLE_NAME = MAX_IDENTIFIER - len(PREFIX + "_new")


# `quote` is the shared quoting (engines/mysql/identifiers.py), under the name spirit uses.
quote = quote_ident


@dataclass(frozen=True)
class TableNames:
    """The names around one source table `schema.table`."""

    schema: str
    table: str

    @property
    def shadow(self) -> str:
        return f"{PREFIX}{self.table}_new"

    @property
    def old(self) -> str:
        return f"{PREFIX}{self.table}_old"

    @property
    def errors(self) -> str:
        """Where the triggers record writes the shadow refused (see triggers.py)."""
        return f"{PREFIX}{self.table}_err"

    @property
    def trigger_insert(self) -> str:
        return f"{PREFIX}{self.table}_ins"

    @property
    def trigger_update(self) -> str:
        return f"{PREFIX}{self.table}_upd"

    @property
    def trigger_delete(self) -> str:
        return f"{PREFIX}{self.table}_del"

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
