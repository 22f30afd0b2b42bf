"""A statement names exactly one table, in the apply's namespace (issue 10 §3; schemabot/ddl_scope.py):
every qualified name the tokens hold is checked, also in forms sqlglot reads only as a Command."""

from __future__ import annotations

import pytest

from schemabot.ddl import check_namespace, parse_ddl
from schemabot.errors import ValidationError

NAMESPACE = "app"


def _submit(ddl: str) -> None:
    """What submit does with one statement for namespace `app`."""
    check_namespace(parse_ddl(ddl), NAMESPACE)


@pytest.mark.parametrize(
    ("ddl", "fragment"),
    [
        # A second table, whatever its schema.
        ("ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE other.victim", "exchanges a partition"),
        ("ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE victim", "exchanges a partition"),
        ("ALTER TABLE t exchange partition p0 with table `app`.`v` WITHOUT VALIDATION", "exchanges"),
        ("ALTER TABLE t CONVERT PARTITION p0 TO TABLE other.x", "converts a partition"),
        ("ALTER TABLE t CONVERT TABLE x TO PARTITION p1 VALUES LESS THAN (10)", "converts a partition"),
        ("ALTER TABLE t UNION=(other.a)", "a MERGE table"),
        ("ALTER TABLE t UNION = (a, b)", "a MERGE table"),
        ("CREATE TABLE t (a INT) ENGINE=MERGE UNION=(other.a)", "ENGINE=MERGE"),
        ("CREATE TABLE t (a INT) ENGINE=MERGE UNION=(a)", "ENGINE=MERGE"),
        ("CREATE TABLE t (a INT, CHECK (app.u.a > 0))", "another table"),
        # A table whose rows live in another table or server.
        (
            "CREATE TABLE t (a INT) ENGINE=FEDERATED CONNECTION='mysql://u@h:3306/other/victim'",
            "ENGINE=FEDERATED",
        ),
        ("ALTER TABLE t ENGINE = connect table_type=MYSQL", "ENGINE=CONNECT"),
        ("ALTER TABLE t ENGINE SPIDER", "ENGINE=SPIDER"),
        ("CREATE TABLE t (a INT) ENGINE=MRG_MYISAM", "ENGINE=MRG_MYISAM"),
        ("ALTER TABLE t CONNECTION='mysql://u@h/other/victim'", "sets CONNECTION"),
        ("ALTER TABLE t CONNECTION 'srv'", "sets CONNECTION"),
        # Another schema, in forms the parse tree misses (a Command fallback) or reads.
        (
            "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4, "
            "ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES other.p(id)",
            "names schema 'other'",
        ),
        (
            "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4, ADD FOREIGN KEY (a) "
            "REFERENCES `other` . `p` (id)",
            "names schema 'other'",
        ),
        ("ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES other.p(id)", "names schema 'other'"),
        ("CREATE TABLE t (a INT REFERENCES other.p (id))", "names schema 'other'"),
        ("CREATE TABLE t LIKE other.x", "names schema 'other'"),
        ("CREATE TABLE t (LIKE other.x)", "names schema 'other'"),
        ("ALTER TABLE t ADD c INT REFERENCES other.`table` (id)", "names schema 'other'"),
        ("ALTER TABLE t ADD c INT AS (other.f(a))", "names schema 'other'"),
        ("CREATE TABLE t (a INT, CHECK (other.t.a > 0))", "names schema 'other'"),
        # A sequence in another schema, even one named like the table (MariaDB).
        ("ALTER TABLE other ADD b INT DEFAULT NEXTVAL(other.s)", "names schema 'other'"),
        ("ALTER TABLE other ADD b INT DEFAULT NEXT VALUE FOR other.s", "names schema 'other'"),
        # A qualifier that is not this table is a schema (fail closed).
        ("ALTER TABLE t ADD c INT DEFAULT (u.a)", "names schema 'u'"),
        ("ALTER TABLE t ADD c INT REFERENCES 1e.p (id)", "names schema '1e'"),
        ("ALTER TABLE t ADD c INT AS (a.b.c.d)", "not a table or a column"),
    ],
)
def test_names_outside_the_table_and_namespace_are_refused(ddl: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as err:
        _submit(ddl)
    message = str(err.value)
    assert fragment in message, message
    assert "\n" not in message and " ".join(ddl.split())[:30] in message


@pytest.mark.parametrize(
    "ddl",
    [
        "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4, ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES p(id)",
        "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4, ADD CONSTRAINT fk FOREIGN KEY (a) "
        "REFERENCES app.p(id)",
        "ALTER TABLE app.t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES `app`.`p` (`id`)",
        "CREATE TABLE t (a INT, FOREIGN KEY (a) REFERENCES p (id) ON DELETE CASCADE)",
        "CREATE TABLE t LIKE x",
        "CREATE TABLE t LIKE app.x",
        "CREATE TABLE IF NOT EXISTS app.t (LIKE app.x)",
        # `table.column` in expressions: the qualifier is the table itself.
        "CREATE TABLE t (a INT, b INT AS (t.a + 1.5), CHECK (t.a > 0))",
        "CREATE TABLE `t` (a INT, CHECK (`t`.`a` > 0))",
        "CREATE TABLE app.t (a INT, CHECK (app.t.a > 0))",
        "ALTER TABLE T ADD c INT AS (t.a * 2) VIRTUAL",
        "ALTER TABLE t ADD c INT DEFAULT (t.a)",
        "CREATE TABLE t (a varchar(3), CHECK (t.a LIKE 'x%'), CHECK (a LIKE t.a))",
        # Decimal numbers are one token, or a point after a space.
        "CREATE TABLE t (a DECIMAL(4,2) DEFAULT .5, b DOUBLE DEFAULT 1.5e3, c FLOAT DEFAULT 0.25)",
        "ALTER TABLE t ALTER COLUMN a SET DEFAULT .75",
        # Dots and keywords inside quotes are text, and quoted keywords are names.
        "ALTER TABLE t ADD c INT COMMENT 'see other.victim; UNION SELECT'",
        "ALTER TABLE t ADD COLUMN exchange INT, ADD `union` INT, ADD `select` INT, ADD `table` INT",
        "ALTER TABLE t ADD COLUMN `other.x` INT",
        "ALTER TABLE t PARTITION BY RANGE (a) (PARTITION p0 VALUES LESS THAN (10))",
        "ALTER TABLE t TRUNCATE PARTITION p0",
        "DROP TABLE IF EXISTS app.t",
        # A column named like a table option, and a local engine.
        "ALTER TABLE t ADD COLUMN connection VARCHAR(10), ADD engine INT",
        "CREATE TABLE t (a INT, connection INT) ENGINE=InnoDB",
        "ALTER TABLE t ENGINE=InnoDB",
    ],
)
def test_legitimate_forms_stay_accepted(ddl: str) -> None:
    _submit(ddl)
