"""The state tables are utf8mb4 on MySQL/MariaDB, whatever the server's or database's default.

A table created without a character set takes its database's default, which is latin1 on many
servers: DDL text, error messages and names in other scripts would then be mangled or refused.
Converting afterwards is not possible once foreign keys exist (MariaDB refuses to change the
character set of a column used in a foreign key, error 1833, even with foreign_key_checks=0), so
every CREATE TABLE compiled for MySQL that names no character set gets utf8mb4 here, which covers
every migration, present and future. Imported by schemabot/migrations/env.py.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateTable

CHARSET = "utf8mb4"


@compiles(CreateTable, "mysql")
@compiles(CreateTable, "mariadb")
def _create_table_utf8mb4(create: CreateTable, compiler: Any, **kw: Any) -> str:
    text: str = compiler.visit_create_table(create, **kw)
    options = {k.lower() for k in create.element.kwargs}
    if not options & {"mysql_charset", "mysql_default_charset", "mariadb_charset", "mariadb_default_charset"}:
        text = text.rstrip() + f" DEFAULT CHARSET={CHARSET}"
    return text
