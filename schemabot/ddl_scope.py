"""What a DDL statement reaches beyond its own table, read from its tokens (docs/architecture.md
§5.1 and §8 invariant 10: an apply touches only the table it names, in the namespace it names).

sqlglot's tree misses names in forms it does not model (a `Command` fallback such as
`CONVERT TO CHARACTER SET ..., ADD CONSTRAINT ... REFERENCES other.p (id)`, `UNION=(other.a)`,
`EXCHANGE PARTITION ... WITH TABLE other.victim`), so this check does not trust the tree: it reads
every dotted chain `a.b` / `a.b.c` from sqlglot's MySQL tokens (quote-aware, backticks included)
and fails closed. A chain's qualifier counts as a schema unless it can only be the statement's own
table (`t.col` in a generated column or CHECK expression); the caller then refuses any schema
other than the apply's namespace. Forms that name a second table are refused outright, whatever
its schema, except a foreign key's `REFERENCES` and `CREATE TABLE ... LIKE`.

The chains follow MySQL's lexer: a dot right after a word joins it to the next word (`t.1a` is a
column `1a`); a dot after a space and before digits is a decimal point (`DEFAULT .5`); `1.5` is one
number token. Comments are gone before this runs (`engines.mysql.ddl_text.strip_comments`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot.dialects.mysql import MySQL
from sqlglot.tokens import Token, TokenType

from schemabot.errors import ValidationError

_WORD = re.compile(r"[\w$]+", re.UNICODE)
_QUOTED = frozenset({TokenType.IDENTIFIER, TokenType.STRING})
# After these the next name is a table: a schema-qualified name, never `table.column`.
_TABLE_BEFORE = frozenset({"REFERENCES", "TABLE", "EXISTS"})
# Sequence objects read (and advanced) from an expression: MariaDB's `NEXT VALUE FOR s`,
# `NEXTVAL(s)`; their qualifier is a schema even when it matches the table's name.
_SEQUENCE_FUNCTIONS = frozenset({"NEXTVAL", "LASTVAL", "SETVAL"})
_DIGITS = re.compile(r"\d+")
# Storage engines whose table is a view of other tables or servers: FEDERATED (a remote table),
# CONNECT and SPIDER (external or remote data), MERGE (other MyISAM tables).
_REMOTE_ENGINES = frozenset({"FEDERATED", "FEDERATEDX", "CONNECT", "SPIDER", "MERGE", "MRG_MYISAM"})


@dataclass(frozen=True)
class _Chain:
    parts: tuple[str, ...]
    first: int  # index of its first token
    last: int  # index of its last token


def _tokens(text: str) -> list[Token]:
    return list(MySQL().tokenizer().tokenize(text))


def _is_name(token: Token) -> bool:
    """A token MySQL could read as (part of) a name next to a dot: a word, including keywords and
    numbers (identifiers may begin with a digit), or a quoted identifier or string (`"s"` is an
    identifier under ANSI_QUOTES: counted, to fail closed)."""
    return token.token_type in _QUOTED or bool(_WORD.fullmatch(token.text.replace(".", "")))


def _split(token: Token) -> list[str]:
    """The name parts of one token: a quoted name is one part; an unquoted token that holds dots
    (sqlglot reads `1e.p` as one word) is several."""
    if token.token_type in _QUOTED:
        return [token.text]
    return token.text.split(".")


def _chains(tokens: list[Token]) -> list[_Chain]:
    chains: list[_Chain] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not _is_name(token) or (token.token_type is TokenType.NUMBER and "." in token.text):
            i += 1
            continue
        parts, j = _split(token), i
        while j + 2 < len(tokens) and tokens[j + 1].token_type is TokenType.DOT:
            dot, after = tokens[j + 1], tokens[j + 2]
            spaced = dot.start > tokens[j].end + 1
            decimal = spaced and after.start == dot.end + 1 and bool(_DIGITS.fullmatch(after.text))
            if not _is_name(after) or decimal:
                break  # `x .5`: a decimal point, not `x.5`
            parts += _split(after)
            j += 2
        if len(parts) > 1:
            chains.append(_Chain(tuple(parts), i, j))
        i = j + 1
    return chains


def _word(tokens: list[Token], index: int) -> str:
    if 0 <= index < len(tokens) and tokens[index].token_type not in _QUOTED:
        return tokens[index].text.upper()
    return ""


def _table_statement(tokens: list[Token]) -> bool:
    """CREATE, ALTER or DROP, then TABLE within its modifiers (TEMPORARY, OR REPLACE, ONLINE, IGNORE)."""
    head = [_word(tokens, i) for i in range(min(len(tokens), 5))]
    return bool(head) and head[0] in ("CREATE", "ALTER", "DROP") and "TABLE" in head[1:]


def refuse_second_table(text: str, quoted: str) -> None:
    """Refuse forms that name a second table (or read another table's rows), whatever its schema.

    Run before the statement is classified, so a form sqlglot cannot read at all (`CREATE TABLE
    ... UNION=(...)`) is refused for what it does, not as an unknown statement."""
    tokens = _tokens(text)
    if not _table_statement(tokens):
        return  # not CREATE/ALTER/DROP TABLE: the classification refuses it for that
    chains = _chains(tokens)
    consumed = {k for c in chains for k in range(c.first, c.last + 1)}
    words = [_word(tokens, i) if i not in consumed else "" for i in range(len(tokens))]
    for i, word in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if word == "EXCHANGE" and nxt == "PARTITION":
            raise ValidationError(
                f"DDL {quoted} exchanges a partition with another table, moving that table's rows; "
                "an apply changes only the table it names"
            )
        if word == "CONVERT" and nxt in ("PARTITION", "TABLE"):
            raise ValidationError(
                f"DDL {quoted} converts a partition to or from another table; an apply changes only "
                "the table it names"
            )
        if word == "UNION" and tokens[i].token_type is TokenType.UNION:
            raise ValidationError(
                f"DDL {quoted} sets UNION=(...), a MERGE table over other tables; an apply changes "
                "only the table it names"
            )
        if word == "SELECT" and tokens[i].token_type is TokenType.SELECT:
            raise ValidationError(
                f"DDL {quoted} reads rows with SELECT; an apply changes only the table it names"
            )
        if word == "ENGINE" and _engine_after(tokens, i) in _REMOTE_ENGINES:
            raise ValidationError(
                f"DDL {quoted} uses ENGINE={_engine_after(tokens, i)}, whose rows live in another "
                "table or server; an apply changes only the table it names"
            )
        if word == "CONNECTION" and _option_value(tokens, i) is not None:
            raise ValidationError(
                f"DDL {quoted} sets CONNECTION=..., which points the table at another table or "
                "server; an apply changes only the table it names"
            )
    tables = [i for i, w in enumerate(words) if w == "TABLE" and tokens[i].token_type is TokenType.TABLE]
    if len(tables) > 1:
        raise ValidationError(
            f"DDL {quoted} names a second table (TABLE ...); an apply changes only the table it names"
        )


def _option_value(tokens: list[Token], index: int) -> Token | None:
    """The value of a table option `NAME [=] value` whose name is at `index`, else None (a
    column named like the option is followed by its type, not by `=` or a string)."""
    j = index + 1
    if j < len(tokens) and tokens[j].token_type is TokenType.EQ:
        j += 1
    elif not (j < len(tokens) and tokens[j].token_type is TokenType.STRING):
        return None
    return tokens[j] if j < len(tokens) else None


def _engine_after(tokens: list[Token], index: int) -> str:
    value = _option_value(tokens, index)
    if value is None and index + 1 < len(tokens):
        value = tokens[index + 1]  # ENGINE name, without `=`
    return value.text.upper() if value is not None else ""


def _like_source(tokens: list[Token], head_end: int, index: int) -> bool:
    """Is the name at `index` the source of `CREATE TABLE t LIKE s` / `CREATE TABLE t (LIKE s)`
    (not a LIKE operator in a CHECK expression)?"""
    if _word(tokens, index - 1) != "LIKE":
        return False
    if index - 2 == head_end:
        return True
    return index - 3 == head_end and tokens[index - 2].token_type is TokenType.L_PAREN


def _head_end(tokens: list[Token], chains: list[_Chain]) -> int:
    """Index of the last token of the statement's own table name (after its first TABLE)."""
    for i, token in enumerate(tokens):
        if token.token_type is TokenType.TABLE:
            j = i + 1
            while _word(tokens, j) in ("IF", "NOT", "EXISTS"):
                j += 1
            for chain in chains:
                if chain.first == j:
                    return chain.last
            return j
    return -1


def scope_schemas(text: str, table: str, quoted: str) -> frozenset[str]:
    """Every schema `text` names (its table's, a REFERENCES or LIKE source's, a function's or a
    sequence's qualifier, any qualifier that cannot be its own table); ValidationError for a
    column of another table or a name of more than three parts."""
    tokens = _tokens(text)
    chains = _chains(tokens)
    head_end = _head_end(tokens, chains)
    schemas: set[str] = set()
    own = table.lower()
    for chain in chains:
        name = ".".join(chain.parts)
        if len(chain.parts) > 3:
            raise ValidationError(f"DDL {quoted} names {name!r}, which is not a table or a column")
        before = _word(tokens, chain.first - 1)
        table_place = (
            before in _TABLE_BEFORE
            or _like_source(tokens, head_end, chain.first)
            or before == "FOR"
            or (
                chain.first >= 2
                and tokens[chain.first - 1].token_type is TokenType.L_PAREN
                and _word(tokens, chain.first - 2) in _SEQUENCE_FUNCTIONS
            )
        )
        called = chain.last + 1 < len(tokens) and tokens[chain.last + 1].token_type is TokenType.L_PAREN
        if table_place:
            if len(chain.parts) != 2:
                raise ValidationError(f"DDL {quoted} names {name!r} where a table goes")
            schemas.add(chain.parts[0])
        elif len(chain.parts) == 3:  # schema.table.column
            if chain.parts[1].lower() != own:
                raise ValidationError(
                    f"DDL {quoted} names column {name!r} of another table; an apply changes only the "
                    "table it names"
                )
            schemas.add(chain.parts[0])
        elif called or chain.parts[0].lower() != own:  # schema.function(...), or not `table.column`
            schemas.add(chain.parts[0])
    return frozenset(schemas)
