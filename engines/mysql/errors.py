"""MySQL and MariaDB server errors by code: which say "try again later" and which say "this can
never work" (docs/architecture.md §7). One place, for every engine that talks to a MySQL server
(direct, spirit, planetscale's branch SQL): the same code gets the same verdict in each.

- `TRANSIENT`: the connection (`CONNECTION`, and every client-library code 2000-2999), a lock
  (`LOCK_WAIT`), or the server's load; the same statement may well work on the next attempt.
- `PERMANENT`: the statement or the data it meets is wrong (syntax, an unknown or duplicate name,
  an invalid default, a value that does not fit, a duplicate key): the server will give the same
  answer every time, so retrying only delays the failure (and may leave work half set up).
- Anything else is `unknown`: callers decide (the engines treat their own bookkeeping's unknown
  errors as retryable, and the user's DDL's as permanent).
"""

from __future__ import annotations

from typing import Any, Literal

import pymysql

# The server or the network went away: a statement sent may or may not have run.
CONNECTION = frozenset(
    {
        0,  # pymysql's own "connection closed" errors carry no server code
        1040,  # too many connections
        1053,  # server shutdown in progress
        1927,  # connection killed (MariaDB)
        2002,  # cannot connect through the socket
        2003,  # cannot connect
        2006,  # server has gone away
        2013,  # lost connection during query
        2014,  # commands out of sync (a half-read result after a failure)
        2055,  # lost connection (system error)
        4031,  # disconnected by the server for inactivity (MySQL 8)
    }
)

# The connection dropped under a statement (server gone, lost during the query): spirit's chunk
# copy does not retry these in place, since the step's connection and its locks went with it.
LOST_MID_QUERY = frozenset({2006, 2013})

# Someone holds a lock the statement needs: nothing ran.
LOCK_WAIT = frozenset(
    {
        1205,  # lock wait timeout (row locks, or metadata locks via lock_wait_timeout)
        1213,  # deadlock
    }
)

TRANSIENT = CONNECTION | LOCK_WAIT | frozenset(
    {
        1317,  # query interrupted
        3024,  # max_execution_time exceeded (MySQL 8)
    }
)

PERMANENT = frozenset(
    {
        1007,  # database exists
        1022,  # duplicate key on write
        1044,  # access denied to database
        1045,  # access denied
        1048,  # column cannot be null
        1049,  # unknown database
        1050,  # table already exists
        1051,  # unknown table
        1054,  # unknown column
        1059,  # identifier too long
        1060,  # duplicate column name
        1061,  # duplicate key name
        1062,  # duplicate entry
        1063,  # incorrect column specifier
        1064,  # syntax error
        1067,  # invalid default value
        1068,  # multiple primary keys
        1070,  # too many key parts
        1071,  # key too long
        1072,  # key column does not exist
        1074,  # column length too big
        1075,  # incorrect table definition (auto column)
        1089,  # incorrect prefix key
        1090,  # cannot drop all columns
        1091,  # cannot drop: check that it exists
        1101,  # BLOB/TEXT cannot have a default
        1102,  # incorrect database name
        1103,  # incorrect table name
        1113,  # a table must have at least one column
        1116,  # too many tables
        1117,  # too many columns
        1118,  # row size too large
        1138,  # invalid use of NULL
        1142,  # command denied (table)
        1143,  # command denied (column)
        1146,  # table does not exist
        1153,  # packet bigger than max_allowed_packet: the same statement is always too big
        1166,  # incorrect column name
        1170,  # BLOB/TEXT key without length
        1171,  # all parts of a primary key must be NOT NULL
        1176,  # key does not exist
        1211,  # not allowed to create a user
        1227,  # access denied; needs a privilege
        1235,  # not supported by this version
        1264,  # out of range value
        1265,  # data truncated
        1292,  # incorrect (date, time, ...) value
        1301,  # a function's result larger than max_allowed_packet
        1366,  # incorrect string/integer value
        1367,  # illegal value during conversion
        1406,  # data too long
        1416,  # cannot get geometry object from the data
        1419,  # trigger needs SUPER with binary logging
        1452,  # foreign key constraint fails
        1451,  # row is referenced by a foreign key
        1553,  # index needed by a foreign key
        1659,  # field of this type cannot be a partition function
        1677,  # column cannot be converted
        1691,  # more than one primary key / rebuild needed
        1826,  # duplicate foreign key constraint name
        1846,  # algorithm not supported for this operation
        1901,  # function cannot be used in a generated column
        1906,  # value of a generated column cannot be set
        3105,  # value of a generated column cannot be set (MySQL 8)
        3140,  # invalid JSON text
        3819,  # check constraint violated (MySQL 8)
        4025,  # check constraint violated (MariaDB)
    }
)

Classification = Literal["transient", "permanent", "unknown"]


def error_code(error: BaseException) -> int | None:
    """The server's (or the client library's) error number, if the error carries one."""
    args: tuple[Any, ...] = tuple(getattr(error, "args", ()))
    if args and isinstance(args[0], int):
        return int(args[0])
    return None


def is_connection_error(error: BaseException) -> bool:
    """Whether the connection itself failed (not the statement): the client library said so, or
    the server's code is one of `CONNECTION` or a client-library code (2000-2999)."""
    if isinstance(error, pymysql.err.InterfaceError | ConnectionError | TimeoutError):
        return True
    code = error_code(error)
    return code is not None and (code in CONNECTION or 2000 <= code < 3000)


def lost_mid_query(error: BaseException) -> bool:
    """Whether the connection dropped under the statement (`LOST_MID_QUERY`)."""
    return error_code(error) in LOST_MID_QUERY


def is_lock_wait(error: BaseException) -> bool:
    """Whether a lock held by someone else stopped the statement (a timeout or a deadlock)."""
    return error_code(error) in LOCK_WAIT


def classify(error: BaseException) -> Classification:
    """`transient`, `permanent` or `unknown` for a server or connection error."""
    if is_connection_error(error) or error_code(error) in TRANSIENT:
        return "transient"
    code = error_code(error)
    if code in PERMANENT:
        return "permanent"
    return "unknown"


def is_transient(error: BaseException) -> bool:
    return classify(error) == "transient"


def is_permanent(error: BaseException) -> bool:
    return classify(error) == "permanent"
