"""The binlog change source's pure parts: positions, what the server must allow, which unique
keys the source already enforces, reading a key from a row image."""

from __future__ import annotations

import pytest

from engines.spirit import binlogpos
from engines.spirit.binlogpos import Position, server_refusal
from engines.spirit.binlogreader import KeyColumn
from engines.spirit.binlogsource import _implies, _within

ROW = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL"}
REPL = ["GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `u`@`%`"]


def test_positions_order_by_file_number_then_offset() -> None:
    assert Position("binlog.000009", 900) < Position("binlog.000010", 4)
    assert Position("binlog.000010", 4) < Position("binlog.000010", 5)
    assert max(Position("b.000002", 4), Position("b.000001", 99)) == Position("b.000002", 4)
    assert Position.load(Position("my:log.000003", 77).dump()) == Position("my:log.000003", 77)
    assert Position.load(None) is None


def test_server_refusal_names_each_missing_setting_and_privilege() -> None:
    assert server_refusal(ROW, REPL) is None
    assert server_refusal(ROW, ["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`"]) is None
    why = server_refusal({**ROW, "log_bin": "OFF", "binlog_format": "MIXED"}, REPL)
    assert why is not None and "log_bin=OFF" in why and "binlog_format=MIXED" in why
    assert "binlog_row_image=MINIMAL" in (
        server_refusal({**ROW, "binlog_row_image": "MINIMAL"}, REPL) or ""
    )
    why = server_refusal(ROW, ["GRANT SELECT, INSERT ON *.* TO `u`@`%`"])
    assert why is not None and "REPLICATION SLAVE" in why and "BINLOG MONITOR" in why
    # A schema-level grant is not a replication privilege.
    assert server_refusal(ROW, ["GRANT ALL PRIVILEGES ON `app`.* TO `u`@`%`"]) is not None


def test_a_unique_key_is_implied_only_by_an_enforced_key_on_unchanged_columns() -> None:
    unchanged = {"a", "b"}
    assert _implies([("a", None)], {"a": None, "b": None}, unchanged)  # superset
    assert not _implies([("a", None), ("b", None)], {"a": None}, unchanged)  # subset
    assert not _implies([("c", None)], {"c": None}, unchanged)  # c's type changed
    # A shorter prefix is a stronger constraint than the one enforced.
    assert not _implies([("a", None)], {"a": 10}, unchanged)
    assert _implies([("a", 10)], {"a": 20}, unchanged)
    assert not _implies([("a", 20)], {"a": 10}, unchanged)


def test_key_values_are_read_by_position_and_unsigned_integers_fixed() -> None:
    column = KeyColumn(2, "id", "bigint(20) unsigned")
    assert column.value({"UNKNOWN_COL2": -1}) == 2**64 - 1
    assert KeyColumn(0, "id", "int(10) unsigned").value({"UNKNOWN_COL0": -2}) == 2**32 - 2
    assert KeyColumn(0, "id", "int(11)").value({"UNKNOWN_COL0": -2}) == -2
    assert KeyColumn(1, "k", "varchar(10)").value({"k": "x", "UNKNOWN_COL1": "y"}) == "x"


def test_within_a_chunk() -> None:
    assert _within((5,), (4,), (5,), True)
    assert not _within((4,), (4,), (5,), True)
    assert _within((1,), None, (5,), True) and _within((9,), (4,), None, True)
    assert _within(("zz",), ("a",), ("b",), False)  # not comparable here: counts as inside


@pytest.mark.parametrize(
    ("version", "statement"),
    [
        ("10.11.19-MariaDB-0+deb12u1", "SHOW MASTER STATUS"),
        ("11.4.2-MariaDB", "SHOW MASTER STATUS"),
        ("5.7.44-log", "SHOW MASTER STATUS"),
        ("8.0.36", "SHOW MASTER STATUS"),
        ("8.2.0", "SHOW BINARY LOG STATUS"),
        ("8.4.3", "SHOW BINARY LOG STATUS"),
        ("9.1.0-commercial", "SHOW BINARY LOG STATUS"),
    ],
)
def test_the_binary_log_status_statement_follows_the_server(version: str, statement: str) -> None:
    """MySQL 8.4 removed SHOW MASTER STATUS; MariaDB never had SHOW BINARY LOG STATUS."""
    assert binlogpos.status_statement(version) == statement
