"""When the deferred indexes' build starts alongside the copy (engines/spirit/earlybuild.py)."""

from __future__ import annotations

import pytest

from engines.spirit.earlybuild import start_share

MB = 1024 * 1024


def test_by_default_the_build_is_after_the_copy() -> None:
    assert start_share(1, 1_000_000, 128 * MB, None) == 1


def test_auto_the_copy_left_takes_about_as_long_as_the_build() -> None:
    # A build takes half the copy's time per key: the rest of the copy and the build end together.
    assert start_share(1, 1_000_000, 128 * MB, "auto") == pytest.approx(2 / 3)
    assert start_share(4, 100_000, 128 * MB, "auto") == pytest.approx(1 / 3)


def test_the_option_decides_and_1_means_after_the_copy() -> None:
    assert start_share(1, 1_000_000, 128 * MB, 0.5) == 0.5
    assert start_share(1, 1_000_000, 128 * MB, 1) == 1


def test_a_large_table_starts_late_enough_for_the_online_log() -> None:
    # 100M rows: half of a 128 MB log (one per key) holds about 524k rows' entries, so the build
    # starts with 99.5% copied, whatever was asked.
    share = start_share(1, 100_000_000, 128 * MB, 0.2)
    assert share == pytest.approx(1 - (64 * MB / 128) / 100_000_000)
    assert 0.99 < share < 1
    assert start_share(4, 100_000_000, 128 * MB, "auto") == pytest.approx(share)
    # 1M rows and four keys: the log allows starting at 48%, later than auto's 33%.
    assert start_share(4, 1_000_000, 128 * MB, "auto") == pytest.approx(1 - 524_288 / 1_000_000)


def test_without_an_estimate_the_share_is_the_asked_one() -> None:
    assert start_share(2, 0, 128 * MB, "auto") == pytest.approx(0.5)


def test_a_wide_key_starts_the_build_later_than_a_narrow_one() -> None:
    # The bench table's key: k BIGINT and the primary key id INT, with the record header.
    narrow = 8 + 4 + 16
    wide = 1020 + 4 + 16  # a VARCHAR(255) in utf8mb4 at its full width
    assert start_share(1, 1_000_000, 128 * MB, "auto", narrow) == pytest.approx(2 / 3)
    later = 1 - (64 * MB / wide) / 1_000_000
    assert start_share(1, 1_000_000, 128 * MB, "auto", wide) == pytest.approx(later)


def test_column_widths_for_the_log_estimate() -> None:
    from engines.spirit.earlybuild import _column_bytes

    assert _column_bytes("BIGINT", None, 19) == 8
    assert _column_bytes("decimal", None, 12) == 7
    assert _column_bytes("varchar", 1020, None) == 1020
    assert _column_bytes("text", 65535, None) == 3072
    assert _column_bytes("geometry", None, None) == 64
