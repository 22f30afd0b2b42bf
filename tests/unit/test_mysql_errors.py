"""Server errors by code (engines/mysql/errors.py): the one classification every MySQL engine
uses (docs/architecture.md §7)."""

from __future__ import annotations

import pymysql
import pytest

from engines.mysql.errors import classify, is_permanent, is_transient


@pytest.mark.parametrize(
    "code",
    [1064, 1067, 1054, 1060, 1061, 1062, 1091, 1146, 1406, 1265, 1292, 1366, 1048, 1138, 1101,
     1118, 1071, 1050],
)
def test_definition_syntax_and_data_errors_are_permanent(code: int) -> None:
    error = pymysql.err.OperationalError(code, "the server says no")
    assert classify(error) == "permanent" and is_permanent(error) and not is_transient(error)


@pytest.mark.parametrize("code", [2006, 2013, 1205, 1213, 1040, 1053, 1927])
def test_connection_and_lock_errors_are_transient(code: int) -> None:
    error = pymysql.err.OperationalError(code, "try again")
    assert classify(error) == "transient" and not is_permanent(error)


def test_client_side_connection_failures_are_transient_and_unknown_codes_are_unknown() -> None:
    assert classify(pymysql.err.InterfaceError(0, "closed")) == "transient"
    assert classify(ConnectionResetError()) == "transient"
    assert classify(pymysql.err.OperationalError(1999, "?")) == "unknown"
    assert classify(ValueError("no code")) == "unknown"
