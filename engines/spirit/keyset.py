"""Primary key values as watermarks, and the keyset predicates that walk a table in key order.

A watermark is the last key a copy or checksum has finished (inclusive). It is stored in the
checkpoint as JSON, so every value keeps its type: integers as integers (INT UNSIGNED and BIGINT
UNSIGNED maxima exceed a double), decimals and dates as text, binary keys as hex.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from engines.spirit.naming import quote

Key = tuple[Any, ...]


def _encode(value: Any) -> list[Any]:
    if value is None:
        return ["null", None]
    if isinstance(value, bool):
        return ["int", int(value)]
    if isinstance(value, int):
        return ["int", value]
    if isinstance(value, Decimal):
        return ["dec", str(value)]
    if isinstance(value, float):
        return ["float", repr(value)]
    if isinstance(value, dt.datetime):
        return ["datetime", value.isoformat()]
    if isinstance(value, dt.date):
        return ["date", value.isoformat()]
    if isinstance(value, dt.timedelta):
        return ["time", value.total_seconds()]
    if isinstance(value, bytes | bytearray):
        return ["bytes", bytes(value).hex()]
    if isinstance(value, str):
        return ["str", value]
    raise TypeError(f"cannot store a key value of type {type(value).__name__}")


def _decode(item: Sequence[Any]) -> Any:
    kind, raw = item
    decoders: dict[str, Any] = {
        "null": lambda _: None,
        "int": int,
        "dec": Decimal,
        "float": float,
        "datetime": dt.datetime.fromisoformat,
        "date": dt.date.fromisoformat,
        "time": lambda s: dt.timedelta(seconds=s),
        "bytes": bytes.fromhex,
        "str": str,
    }
    return decoders[kind](raw)


def dump_key(key: Key | None) -> str | None:
    return None if key is None else json.dumps([_encode(v) for v in key])


def load_key(text: str | None) -> Key | None:
    return None if text is None else tuple(_decode(item) for item in json.loads(text))


def after(columns: Sequence[str], key: Key, alias: str = "") -> tuple[str, list[Any]]:
    """`(c1, c2, ...) > key` written as an OR of prefixes, plus a redundant `c1 >= k1` so that
    the range optimizer of both MySQL and MariaDB starts the index scan at the key."""
    cols = [f"{alias}{quote(c)}" for c in columns]
    ors: list[str] = []
    params: list[Any] = [key[0]]
    for i in range(len(cols)):
        terms = [f"{cols[j]} = %s" for j in range(i)] + [f"{cols[i]} > %s"]
        ors.append("(" + " AND ".join(terms) + ")")
        params.extend(key[: i + 1])
    return f"({cols[0]} >= %s AND ({' OR '.join(ors)}))", params


def up_to(columns: Sequence[str], key: Key, alias: str = "") -> tuple[str, list[Any]]:
    """`(c1, c2, ...) <= key`, in the same shape as `after`."""
    cols = [f"{alias}{quote(c)}" for c in columns]
    ors: list[str] = []
    params: list[Any] = [key[0]]
    for i in range(len(cols)):
        terms = [f"{cols[j]} = %s" for j in range(i)]
        terms.append(f"{cols[i]} < %s" if i < len(cols) - 1 else f"{cols[i]} <= %s")
        ors.append("(" + " AND ".join(terms) + ")")
        params.extend(key[: i + 1])
    return f"({cols[0]} <= %s AND ({' OR '.join(ors)}))", params


def key_range(
    columns: Sequence[str], low: Key | None, high: Key | None, alias: str = ""
) -> tuple[str, list[Any]]:
    """The WHERE condition for keys in (low, high]; an open end when low or high is None."""
    parts: list[str] = []
    params: list[Any] = []
    if low is not None:
        sql, p = after(columns, low, alias)
        parts.append(sql)
        params.extend(p)
    if high is not None:
        sql, p = up_to(columns, high, alias)
        parts.append(sql)
        params.extend(p)
    return (" AND ".join(parts) if parts else "1=1"), params


def order_by(columns: Sequence[str], alias: str = "") -> str:
    return ", ".join(f"{alias}{quote(c)}" for c in columns)


def describe(key: Key | None) -> str:
    """A short human form of a key for messages (no values are secret, but keep it short)."""
    if key is None:
        return "start"
    text = ", ".join(str(v) for v in key)
    return text if len(text) <= 60 else text[:57] + "..."
