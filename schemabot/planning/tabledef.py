"""A table definition read from the server's own `SHOW CREATE TABLE` text.

The server normalises every definition (types, defaults, key order, quoting), so two tables are
alike exactly when their normalised texts are alike. This module splits that text into the parts
the differ compares: columns (in order), keys and constraints (in order), table options, and the
partitioning clause. It reads only the server's output format, never user-written DDL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engines.mysql.identifiers import quote_ident

_NAME = r"`((?:[^`]|``)+)`"
_HEADER = re.compile(rf"^CREATE TABLE {_NAME} \($")
_COLUMN = re.compile(rf"^  {_NAME} (.*?),?$")
_PRIMARY = re.compile(r"^  PRIMARY KEY (\(.*\).*?),?$")
_KEY = re.compile(rf"^  (UNIQUE KEY|KEY|FULLTEXT KEY|SPATIAL KEY) {_NAME} (\(.*\).*?),?$")
_CONSTRAINT = re.compile(rf"^  CONSTRAINT {_NAME} (FOREIGN KEY|CHECK) (.*?),?$")
_OPTION = re.compile(
    r"\s*(DEFAULT CHARSET|[A-Z_]+(?: [A-Z_]+)?)=('(?:[^']|'')*'|\S+)",
)
_PARTITION = re.compile(r"\n\s*(?:/\*!\d+ )?PARTITION BY", re.IGNORECASE)


class UnsupportedTable(ValueError):
    """A definition the differ refuses to change (partitioning), with a message for a person."""


def unquote(name: str) -> str:
    return name.replace("``", "`")


# The shared quoting (engines/mysql/identifiers.py), under the name the differ uses.
quote = quote_ident


@dataclass(frozen=True)
class Column:
    name: str
    definition: str  # the text after the name, as SHOW CREATE TABLE prints it
    charset: str | None = None  # from information_schema, for text columns
    collation: str | None = None

    @property
    def identity(self) -> tuple[str, str | None, str | None]:
        """What makes two columns alike: the printed definition *and* the character set, which
        SHOW CREATE TABLE omits when it equals the table's default."""
        return (_strip_charset(self.definition), self.charset, self.collation)

    def full_definition(self) -> str:
        """The definition with an explicit character set and collation for text columns, so it
        means the same whatever the table's default is."""
        if self.charset is None:
            return self.definition
        type_, rest = split_type(_strip_charset(self.definition))
        extra = f" CHARACTER SET {self.charset}" + (f" COLLATE {self.collation}" if self.collation else "")
        return f"{type_}{extra}{(' ' + rest) if rest else ''}"


@dataclass(frozen=True)
class Key:
    """An index or constraint line. `kind` is PRIMARY KEY, UNIQUE KEY, KEY, FULLTEXT KEY,
    SPATIAL KEY, FOREIGN KEY or CHECK."""

    kind: str
    name: str
    body: str  # "(`a`,`b`) USING BTREE COMMENT '...'" or the constraint's text

    @property
    def columns(self) -> list[str]:
        head = re.match(r"\(((?:[^()]|\([^()]*\))*)\)", self.body)
        if not head:
            return []
        return [unquote(m) for m in re.findall(r"`((?:[^`]|``)+)`", head.group(1))]

    @property
    def is_constraint(self) -> bool:
        return self.kind in ("FOREIGN KEY", "CHECK")

    def add_clause(self) -> str:
        if self.kind == "PRIMARY KEY":
            return f"ADD PRIMARY KEY {self.body}"
        if self.is_constraint:
            return f"ADD CONSTRAINT {quote(self.name)} {self.kind} {self.body}"
        return f"ADD {self.kind} {quote(self.name)} {self.body}"

    def drop_clause(self) -> str:
        if self.kind == "PRIMARY KEY":
            return "DROP PRIMARY KEY"
        if self.kind == "FOREIGN KEY":
            return f"DROP FOREIGN KEY {quote(self.name)}"
        if self.kind == "CHECK":
            return f"DROP CONSTRAINT {quote(self.name)}"
        return f"DROP INDEX {quote(self.name)}"


@dataclass
class TableDef:
    name: str
    columns: list[Column] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    partitioning: str | None = None
    text: str = ""

    def column(self, name: str) -> Column | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None

    def key(self, kind_group: str, name: str) -> Key | None:
        for key in self.keys:
            if _key_group(key) == kind_group and key.name == name:
                return key
        return None

    @property
    def primary_key(self) -> Key | None:
        return next((k for k in self.keys if k.kind == "PRIMARY KEY"), None)

    def create_statement(self) -> str:
        """The normalised CREATE TABLE, without the AUTO_INCREMENT counter."""
        return re.sub(r" AUTO_INCREMENT=\d+", "", self.text)


def _key_group(key: Key) -> str:
    """Keys and constraints live in separate namespaces on the server."""
    if key.kind == "FOREIGN KEY":
        return "fk"
    if key.kind == "CHECK":
        return "check"
    return "index"


key_group = _key_group


def _strip_charset(definition: str) -> str:
    type_, rest = split_type(definition)
    rest = re.sub(r"^CHARACTER SET \w+ ?", "", rest)
    rest = re.sub(r"^COLLATE \w+ ?", "", rest)
    return f"{type_} {rest}".rstrip()


def split_type(definition: str) -> tuple[str, str]:
    """('varchar(10)', 'NOT NULL DEFAULT ...'): the data type (with its parenthesised, quoted
    arguments and `unsigned`/`zerofill`) and the rest."""
    depth = 0
    quoted = False
    i = 0
    while i < len(definition):
        ch = definition[i]
        if quoted:
            if ch == "'" and definition[i + 1 : i + 2] == "'":
                i += 2
                continue
            if ch == "'":
                quoted = False
        elif ch == "'":
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == " " and depth == 0:
            break
        i += 1
    type_, rest = definition[:i], definition[i:].lstrip()
    for word in ("unsigned", "zerofill"):
        if rest.startswith(word + " ") or rest == word:
            type_ += " " + word
            rest = rest[len(word) :].lstrip()
    return type_, rest


Charsets = dict[str, tuple[str | None, str | None]]


def parse_show_create(text: str, charsets: Charsets | None = None) -> TableDef:
    """Parse SHOW CREATE TABLE output. `charsets` maps column name -> (charset, collation)."""
    charsets = charsets or {}
    lines = text.split("\n")
    header = _HEADER.match(lines[0])
    if not header:
        raise ValueError(f"not a SHOW CREATE TABLE text: {lines[0][:80]!r}")
    table = TableDef(name=unquote(header.group(1)), text=text)
    end = next(i for i in range(len(lines) - 1, 0, -1) if lines[i].startswith(")"))
    for line in lines[1:end]:
        if m := _PRIMARY.match(line):
            table.keys.append(Key("PRIMARY KEY", "PRIMARY", m.group(1)))
        elif m := _KEY.match(line):
            table.keys.append(Key(m.group(1), unquote(m.group(2)), m.group(3)))
        elif m := _CONSTRAINT.match(line):
            table.keys.append(Key(m.group(2), unquote(m.group(1)), m.group(3)))
        elif m := _COLUMN.match(line):
            name = unquote(m.group(1))
            charset, collation = charsets.get(name, (None, None))
            table.columns.append(Column(name, m.group(2), charset, collation))
        else:
            raise ValueError(f"table {table.name}: cannot read the definition line {line.strip()!r}")
    tail = "\n".join(lines[end:])[1:]
    partition = _PARTITION.search(tail)
    if partition:
        table.partitioning = tail[partition.start() :].strip()
        tail = tail[: partition.start()]
    for m in _OPTION.finditer(tail):
        table.options[m.group(1)] = m.group(2)
    table.options.pop("AUTO_INCREMENT", None)
    return table
