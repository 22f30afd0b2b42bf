"""Two tables for an apply whose statements need different engines on one MariaDB target (issue
13 §2), and the oracle: the same statements run as plain blocking ALTERs on a copy in another
schema must give the same definitions and rows (docs/architecture.md §8 invariant 7)."""

from __future__ import annotations

import hashlib
import re

from tests.support.mariadb import connect

# ADD COLUMN is INSTANT on MariaDB (direct); INT -> BIGINT must copy the table (spirit).
INSTANT_DDL = "ALTER TABLE accounts ADD COLUMN note VARCHAR(40) NULL"
COPY_DDL = "ALTER TABLE events MODIFY amount BIGINT NOT NULL"
STATEMENTS = (INSTANT_DDL, COPY_DDL)
TABLES = ("accounts", "events")
_AUTO_INCREMENT = re.compile(r" AUTO_INCREMENT=\d+")


def make_tables(schema: str, event_rows: int) -> None:
    """`accounts` (a few rows) and `events` (`event_rows` rows, from MariaDB's sequence engine)."""
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE accounts (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL)")
        cur.execute("INSERT INTO accounts SELECT seq, CONCAT('acct-', seq) FROM seq_1_to_50")
        cur.execute(
            "CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, account INT NOT NULL, "
            "amount INT NOT NULL, KEY ix_account (account))"
        )
        cur.execute(
            "INSERT INTO events SELECT seq, seq % 50 + 1, CAST(seq AS SIGNED) * 3 - 1000000 "
            f"FROM seq_1_to_{event_rows}"
        )
    conn.close()


def run_blocking(schema: str) -> None:
    """The oracle: the same statements as plain blocking ALTERs."""
    conn = connect(schema)
    with conn.cursor() as cur:
        for ddl in STATEMENTS:
            cur.execute(ddl)
    conn.close()


def snapshot(schema: str) -> dict[str, tuple[str, str, int]]:
    """Per table: SHOW CREATE TABLE (without AUTO_INCREMENT=), a digest of every row, the count."""
    conn = connect(schema)
    result: dict[str, tuple[str, str, int]] = {}
    with conn.cursor() as cur:
        for table in TABLES:
            cur.execute(f"SHOW CREATE TABLE `{table}`")
            definition = _AUTO_INCREMENT.sub("", cur.fetchone()[1])  # type: ignore[index]
            cur.execute(f"SELECT * FROM `{table}` ORDER BY id")
            digest = hashlib.sha256()
            count = 0
            for row in cur.fetchall():
                digest.update(repr(row).encode())
                count += 1
            result[table] = (definition, digest.hexdigest(), count)
    conn.close()
    return result


def leftovers(schema: str) -> list[str]:
    """Tables and triggers an engine may leave behind (`_sb_` names, docs/architecture.md §8.1),
    other than spirit's checkpoint table."""
    conn = connect(schema)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name LIKE '\\_sb\\_%%' AND table_name <> '_sb_spirit_checkpoint'",
            (schema,),
        )
        names = [r[0] for r in cur.fetchall()]
        cur.execute(
            "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s", (schema,)
        )
        names += [r[0] for r in cur.fetchall()]
    conn.close()
    return names
