"""One identifier grammar (engines/mysql/identifiers.py) for the validator, spirit's statement
parser and the DDL rewrites: a name they read differently could be validated as one table and
changed as another."""

from __future__ import annotations

import re

import pytest

from engines.base import TableChange
from engines.mysql.ddl_text import retarget
from engines.mysql.identifiers import IDENT, quote_ident, unquote_ident
from engines.spirit.statement import parse_change
from schemabot.ddl import parse_ddl


@pytest.mark.parametrize("name", ["orders", "we`ird", "a``b", "with space", "$dollar_1", "`"])
def test_quote_then_unquote_gives_the_name_back(name: str) -> None:
    quoted = quote_ident(name)
    assert re.fullmatch(IDENT, quoted)
    assert unquote_ident(quoted) == name


def test_a_bare_name_is_its_own_identifier() -> None:
    assert re.fullmatch(IDENT, "order_items$2")
    assert unquote_ident(" order_items ") == "order_items"
    assert not re.fullmatch(IDENT, "two words")


@pytest.mark.parametrize("table", ["orders", "we`ird", "with space"])
def test_validator_statement_parser_and_rewrite_read_the_same_table(table: str) -> None:
    ddl = f"ALTER TABLE `shop`.{quote_ident(table)} ADD COLUMN c INT"
    parsed = parse_ddl(ddl)
    assert (parsed.schema, parsed.table) == ("shop", table)
    statement = parse_change("shop", TableChange(table, ddl, "alter"))
    assert statement.table == table
    assert retarget(ddl, "other") == "ALTER TABLE `other` ADD COLUMN c INT"
