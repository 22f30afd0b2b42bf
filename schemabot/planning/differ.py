"""The declarative differ (issue 13, part 4): from the live definition of a table to the
desired one, as one ALTER TABLE (or a CREATE / DROP for whole tables).

Both sides are the server's normalised `SHOW CREATE TABLE` (the desired statements were loaded into
a scratch schema first), so comparing texts compares meaning. The ALTER is built so that running it
on the live table gives *exactly* the desired definition, including column order and key order:

- keys and constraints that go away or change are dropped first;
- columns that go away are dropped;
- then, in desired order, each new column is added and each changed or misplaced one modified,
  with `FIRST` / `AFTER` so the columns end in the desired order (the server applies positions
  in the order of the list);
- keys and constraints are added last (foreign keys after the indexes they need). The order of
  keys *within one kind* is not planned (see `_changed_keys`): it is the one difference the
  round trip allows.
- table options (engine, default charset and collation, row format, comment, ...) follow.

Partitioned tables are refused (say so in words): repartitioning needs a plan of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemabot.planning.tabledef import Column, Key, TableDef, UnsupportedTable, key_group, quote

# Options and the value that restores the server default when the desired table omits them.
_RESET_OPTION = {
    "ROW_FORMAT": "DEFAULT",
    "COMMENT": "''",
    "KEY_BLOCK_SIZE": "0",
    "STATS_PERSISTENT": "DEFAULT",
    "STATS_AUTO_RECALC": "DEFAULT",
    "STATS_SAMPLE_PAGES": "DEFAULT",
    "PACK_KEYS": "DEFAULT",
    "CHECKSUM": "0",
    "DELAY_KEY_WRITE": "0",
    "MAX_ROWS": "0",
    "MIN_ROWS": "0",
    "AVG_ROW_LENGTH": "0",
    "PAGE_CHECKSUM": "0",
    "TRANSACTIONAL": "DEFAULT",
    "PAGE_COMPRESSED": "0",
    "ENCRYPTED": "DEFAULT",
}


@dataclass
class TableDiff:
    """What changes between two definitions of one table, clause by clause."""

    table: str
    action: str  # create | alter | drop
    statement: str
    dropped_columns: list[Column] = field(default_factory=list)
    added_columns: list[Column] = field(default_factory=list)
    modified_columns: list[tuple[Column, Column]] = field(default_factory=list)  # (live, desired)
    moved_columns: list[str] = field(default_factory=list)
    dropped_keys: list[Key] = field(default_factory=list)
    added_keys: list[Key] = field(default_factory=list)
    option_changes: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    live: TableDef | None = None
    desired: TableDef | None = None


def _changed_keys(live: TableDef, desired: TableDef) -> tuple[list[Key], list[Key]]:
    """(keys and constraints to drop, to add): what is gone or changed, what is new or changed.

    The order of keys of one kind is not planned: the server sorts keys by kind (primary,
    unique, plain, full-text) and keeps creation order within a kind, and it treats a key dropped
    and added again unchanged as no change at all, so that order cannot be set by an ALTER
    short of a copy. Skeema ignores it by default for the same reason.
    """
    drop: list[Key] = []
    add: list[Key] = []
    for group in ("index", "fk", "check"):
        live_k = {k.name: k for k in live.keys if key_group(k) == group}
        desired_k = {k.name: k for k in desired.keys if key_group(k) == group}
        drop += [k for n, k in live_k.items() if desired_k.get(n) != k]
        add += [k for n, k in desired_k.items() if live_k.get(n) != k]
    return drop, add


def diff_table(live: TableDef | None, desired: TableDef | None) -> TableDiff | None:
    """The change from `live` to `desired` (None for either side: create or drop), or None when
    they are alike."""
    if live is None and desired is None:
        raise ValueError("nothing to compare")
    if live is None:
        assert desired is not None
        if desired.partitioning:
            raise UnsupportedTable(
                f"table {desired.name}: partitioned tables are not planned; create it by hand with --ddl"
            )
        return TableDiff(desired.name, "create", desired.create_statement(), desired=desired)
    if desired is None:
        return TableDiff(live.name, "drop", f"DROP TABLE {quote(live.name)}", live=live)
    if live.partitioning != desired.partitioning:
        raise UnsupportedTable(
            f"table {live.name}: partitioning differs between the live table and the schema file; "
            "partition changes are not planned (change them with an explicit --ddl and the spirit engine)"
        )
    result = TableDiff(live.name, "alter", "", live=live, desired=desired)
    clauses: list[str] = []

    drop_keys, add_keys = _changed_keys(live, desired)
    # Foreign keys first: an index a foreign key needs cannot go before the foreign key.
    drop_keys.sort(key=lambda k: 0 if k.kind == "FOREIGN KEY" else 1)
    result.dropped_keys = drop_keys
    clauses += [k.drop_clause() for k in drop_keys]

    desired_names = {c.name for c in desired.columns}
    for col in live.columns:
        if col.name not in desired_names:
            result.dropped_columns.append(col)
            clauses.append(f"DROP COLUMN {quote(col.name)}")

    current = [c.name for c in live.columns if c.name in desired_names]
    previous: str | None = None
    for index, col in enumerate(desired.columns):
        position = "FIRST" if previous is None else f"AFTER {quote(previous)}"
        old = live.column(col.name)
        if old is None:
            result.added_columns.append(col)
            clauses.append(f"ADD COLUMN {quote(col.name)} {col.full_definition()} {position}")
            current.insert(index, col.name)
        else:
            misplaced = current.index(col.name) != index
            if old.identity != col.identity or misplaced:
                if old.identity != col.identity:
                    result.modified_columns.append((old, col))
                if misplaced:
                    result.moved_columns.append(col.name)
                clause = f"MODIFY COLUMN {quote(col.name)} {col.full_definition()}"
                if misplaced:
                    clause += f" {position}"
                    current.remove(col.name)
                    current.insert(index, col.name)
                clauses.append(clause)
        previous = col.name

    result.added_keys = add_keys
    # Foreign keys last, once the index they use exists.
    clauses += [k.add_clause() for k in add_keys if k.kind != "FOREIGN KEY"]
    clauses += [k.add_clause() for k in add_keys if k.kind == "FOREIGN KEY"]

    for name in sorted(set(live.options) | set(desired.options), key=_option_order):
        before, after = live.options.get(name), desired.options.get(name)
        if before == after:
            continue
        result.option_changes[name] = (before, after)
    clauses += _option_clauses(live, desired, result.option_changes)

    if not clauses:
        return None
    result.statement = f"ALTER TABLE {quote(live.name)} " + ", ".join(clauses)
    return result


def _option_order(name: str) -> tuple[int, str]:
    order = ["ENGINE", "DEFAULT CHARSET", "COLLATE"]
    return (order.index(name) if name in order else len(order), name)


def _option_clauses(
    live: TableDef, desired: TableDef, changes: dict[str, tuple[str | None, str | None]]
) -> list[str]:
    clauses: list[str] = []
    for name, (_before, after) in changes.items():
        if name in ("DEFAULT CHARSET", "COLLATE"):
            continue
        if after is None:
            reset = _RESET_OPTION.get(name)
            if reset is None:
                raise UnsupportedTable(
                    f"table {live.name}: the schema file drops the table option {name}, which "
                    "cannot be reset by an ALTER; state its value in the file"
                )
            clauses.append(f"{name}={reset}")
        else:
            clauses.append(f"{name}={after}")
    if "DEFAULT CHARSET" in changes or "COLLATE" in changes:
        charset = desired.options.get("DEFAULT CHARSET")
        collation = desired.options.get("COLLATE")
        text = f"DEFAULT CHARSET={charset}" if charset else ""
        if collation:
            text += f" COLLATE={collation}"
        clauses.insert(0, text.strip())
    return clauses
