"""Server errors by code (engines/mysql/errors.py): the one classification every MySQL engine
uses (docs/architecture.md §7)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pymysql
import pytest

from engines.base import PermanentEngineError, RetryableEngineError
from engines.mysql.errors import (
    PERMANENT,
    TRANSIENT,
    classify,
    is_connection_error,
    is_permanent,
    is_transient,
)
from engines.spirit.connection import target_errors, user_ddl_errors


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


# Every layer that turns a MySQL error into an engine error, as (name, verdict) where the verdict
# is "retryable" or "permanent". Each must agree with the one classification above.
def _direct(error: pymysql.MySQLError) -> str:
    from engines.mysql.connections import classify as direct_classify

    return "retryable" if isinstance(direct_classify(error, "x"), RetryableEngineError) else "permanent"


def _branch_sql(error: pymysql.MySQLError) -> str:
    from engines.planetscale.branch_sql import classify as branch_classify

    return "retryable" if isinstance(branch_classify(error, "x"), RetryableEngineError) else "permanent"


def _spirit(wrapper: Callable[[str], AbstractContextManager[None]]) -> Callable[[pymysql.MySQLError], str]:
    def verdict(error: pymysql.MySQLError) -> str:
        try:
            with wrapper("x"):
                raise error
        except RetryableEngineError:
            return "retryable"
        except PermanentEngineError:
            return "permanent"
        raise AssertionError("no engine error")

    return verdict


LAYERS: dict[str, Callable[[pymysql.MySQLError], str]] = {
    "direct": _direct,
    "planetscale branch SQL": _branch_sql,
    "spirit bookkeeping": _spirit(target_errors),
    "spirit user DDL": _spirit(user_ddl_errors),
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize("code", sorted(TRANSIENT | PERMANENT | {2002, 2055, 2027}))
def test_every_layer_gives_a_classified_code_the_same_verdict(layer: str, code: int) -> None:
    """1045 (access denied) was transient for planetscale's branch SQL and permanent elsewhere;
    1317 and 3024 were permanent for direct and transient for spirit; 2002 was transient for
    direct and unknown for spirit. One list now decides for all of them."""
    error = pymysql.err.OperationalError(code, "the server says so")
    expected = "retryable" if is_transient(error) else "permanent"
    assert classify(error) != "unknown"
    assert LAYERS[layer](error) == expected


def test_a_statement_too_big_for_max_allowed_packet_is_permanent_everywhere() -> None:
    """1153 was `unknown`: spirit's bookkeeping retried it at every step, forever, though the
    server refuses the same statement the same way each time (a lost connection it may cause
    stays transient: the network cannot be told apart from it)."""
    error = pymysql.err.OperationalError(1153, "Got a packet bigger than 'max_allowed_packet' bytes")
    assert classify(error) == "permanent"
    assert {name: verdict(error) for name, verdict in LAYERS.items()} == dict.fromkeys(LAYERS, "permanent")


def test_access_denied_is_permanent_everywhere() -> None:
    error = pymysql.err.OperationalError(1045, "Access denied for user 'app'@'%'")
    assert classify(error) == "permanent"
    assert {name: verdict(error) for name, verdict in LAYERS.items()} == dict.fromkeys(LAYERS, "permanent")


def test_client_library_codes_are_connection_errors() -> None:
    for code in (2002, 2027, 2055, 2999):
        assert is_connection_error(pymysql.err.OperationalError(code, "client"))
    assert not is_connection_error(pymysql.err.OperationalError(1205, "lock wait"))
