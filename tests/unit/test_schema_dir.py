"""Reading a declarative schema directory (issue 13, part 4): one namespace at the top or
one subdirectory per namespace; CREATE TABLE only; comments and quoted semicolons are fine."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemabot.errors import ValidationError
from schemabot.planning.schema_dir import read_schema_dir, split_statements


def test_statements_split_outside_quotes_and_comments() -> None:
    text = "-- a; comment\nCREATE TABLE a (s VARCHAR(3) DEFAULT ';');\n/* x; */ CREATE TABLE `b;` (id INT);\n"
    assert split_statements(text) == [
        "CREATE TABLE a (s VARCHAR(3) DEFAULT ';')",
        "CREATE TABLE `b;` (id INT)",
    ]


def test_top_level_files_belong_to_the_default_namespace(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("CREATE TABLE a (id INT PRIMARY KEY);")
    (tmp_path / "notes.txt").write_text("ignored")
    tables = read_schema_dir(tmp_path, "shop")
    assert [(t.namespace, t.table) for t in tables["shop"]] == [("shop", "a")]
    with pytest.raises(ValidationError, match="names no schema"):
        read_schema_dir(tmp_path, None)


def test_one_subdirectory_per_namespace(tmp_path: Path) -> None:
    for ns in ("billing", "shop"):
        (tmp_path / ns).mkdir()
        (tmp_path / ns / "t.sql").write_text(f"CREATE TABLE t (id INT PRIMARY KEY, ns_{ns} INT);")
    assert sorted(read_schema_dir(tmp_path, "ignored")) == ["billing", "shop"]
    (tmp_path / "stray.sql").write_text("CREATE TABLE x (id INT);")
    with pytest.raises(ValidationError, match="not both"):
        read_schema_dir(tmp_path, None)


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"a.sql": "ALTER TABLE a ADD c INT;"}, "only CREATE TABLE"),
        ({"a.sql": "CREATE TABLE a (id INT);", "b.sql": "CREATE TABLE a (id INT);"}, "also defined in"),
        ({"a.sql": "CREATE TABLE other.a (id INT);"}, "names schema 'other'"),
        ({"a.sql": "CREATE TABLE a (p INT, FOREIGN KEY (p) REFERENCES other.p (id));"}, "schema 'other'"),
        ({"a.sql": "CREATE TABLE a LIKE other.p;"}, "names schema 'other'"),
        ({"a.sql": "this is not sql"}, "a.sql"),
    ],
)
def test_anything_else_is_refused_naming_the_file(
    tmp_path: Path, files: dict[str, str], fragment: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ValidationError, match=fragment):
        read_schema_dir(tmp_path, "shop")
