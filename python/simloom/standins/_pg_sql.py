"""SQL text for the Postgres stand-in: splitting a simple query into statements,
what kind each statement is (read, write, DDL, transaction control, session
command), the rewrites that make Postgres SQL run on DuckDB with Postgres's
meaning, and the types of ``$n`` parameters inferred from where they stand
(Postgres infers them; DuckDB's Python API cannot tell).

Owns: what a statement means before it runs. Must not: run it (``postgres``).
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Statement", "analyze", "split"]

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<string>[eE]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*')
  | (?P<dollar>\$(?P<tag>[A-Za-z_]\w*)?\$.*?\$(?P=tag)?\$)
  | (?P<param>\$\d+)
  | (?P<ident>"(?:[^"]|"")*")
  | (?P<word>[A-Za-z_][\w$]*)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<cast>::)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass
class _Token:
    kind: str
    text: str


def _tokens(sql: str) -> list[_Token]:
    out = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "other"
        if kind == "tag":
            kind = "dollar"
        out.append(_Token(kind, match.group(0)))
    return out


def split(sql: str) -> list[str]:
    """The statements of a simple query, without empty ones."""
    statements: list[str] = []
    current: list[str] = []
    for token in _tokens(sql):
        if token.kind == "other" and token.text == ";":
            text = "".join(current).strip()
            if text:
                statements.append(text)
            current = []
        else:
            current.append(token.text)
    text = "".join(current).strip()
    if text and any(t.kind not in ("space", "comment") for t in _tokens(text)):
        statements.append(text)
    return statements


@dataclass
class Statement:
    """One statement, analysed."""

    text: str
    #: ``read`` ``write`` ``ddl`` ``begin`` ``commit`` ``rollback`` ``savepoint``
    #: ``set`` ``show`` ``noop`` ``empty``
    kind: str
    #: The verb of its command tag (``SELECT``, ``INSERT``, ``CREATE TABLE``...).
    tag: str
    #: The SQL DuckDB runs (parameters cast to their types at bind time).
    duckdb: str = ""
    #: The statement needs the virtual wall clock (``now()`` and friends).
    uses_clock: bool = False
    #: ``SELECT ... FOR UPDATE`` (it takes the write lock).
    locks: bool = False
    #: Tables it names (lower case).
    tables: frozenset[str] = frozenset()
    #: Highest ``$n``.
    params: int = 0
    #: ``n -> where the parameter stands`` for type inference.
    contexts: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    #: For ``begin``/``set``: the isolation level named, if any.
    isolation: str | None = None
    #: For ``set``/``show``: the setting's name (and value for ``set``).
    setting: str = ""
    value: str = ""
    #: INSERT/UPDATE/DELETE ... RETURNING.
    returning: bool = False
    #: The columns of a RETURNING list (``*`` or names) and the target table.
    returning_columns: tuple[str, ...] = ()
    target: str = ""
    #: Set when the statement is known to be malformed before it runs.
    syntax_error: str | None = None


_NOW = "CAST(getvariable('simloom_now') AS TIMESTAMPTZ)"
_CLOCK_WORDS = {
    "now": _NOW,
    "transaction_timestamp": _NOW,
    "statement_timestamp": _NOW,
    "clock_timestamp": _NOW,
}
_CLOCK_KEYWORDS = {
    "current_timestamp": _NOW,
    "localtimestamp": "CAST(getvariable('simloom_now') AS TIMESTAMP)",
    "current_date": "CAST(getvariable('simloom_now') AS DATE)",
}
_ISOLATION = re.compile(
    r"isolation\s+level\s+(serializable|repeatable\s+read|read\s+committed|read\s+uncommitted)",
    re.IGNORECASE,
)
VERSION = "PostgreSQL 15.8 (simloom stand-in on DuckDB)"


def _rewrite(tokens: list[_Token]) -> tuple[str, bool]:
    """Postgres spellings DuckDB lacks or reads otherwise; the clock functions read
    the host's virtual wall clock."""
    out: list[str] = []
    uses_clock = False
    significant = [i for i, t in enumerate(tokens) if t.kind not in ("space", "comment")]
    following = dict(itertools.pairwise(significant))
    for index, token in enumerate(tokens):
        text = token.text
        if token.kind == "string" and text.startswith("'\\x"):
            # '\x00ff'::bytea is hex input in Postgres; DuckDB reads \x00 as one escape.
            cast = following.get(index)
            target = following.get(cast) if cast is not None else None
            if (
                cast is not None
                and target is not None
                and tokens[cast].text == "::"
                and tokens[target].text.lower() == "bytea"
                and re.fullmatch(r"'\\x[0-9A-Fa-f]*'", text)
            ):
                out.append(f"unhex('{text[3:-1]}')")
                continue
        if token.kind == "word":
            lower = text.lower()
            nxt = following.get(index)
            next_text = tokens[nxt].text if nxt is not None else ""
            if lower in _CLOCK_WORDS and next_text == "(":
                # now() -> the variable; drop the empty argument list.
                close = following.get(nxt) if nxt is not None else None
                if nxt is not None and close is not None and tokens[close].text == ")":
                    out.append(_CLOCK_WORDS[lower])
                    tokens[nxt] = _Token("space", "")
                    tokens[close] = _Token("space", "")
                    uses_clock = True
                    continue
            if lower in _CLOCK_KEYWORDS and next_text != "(":
                out.append(_CLOCK_KEYWORDS[lower])
                uses_clock = True
                continue
            if lower in ("numeric", "decimal") and next_text != "(":
                out.append("DECIMAL(38,10)")
                continue
            if lower == "jsonb":
                out.append("JSON")
                continue
            if lower == "public" and next_text == ".":
                out.append("main")  # Postgres's default schema is DuckDB's main
                continue
            if lower == "version" and next_text == "(":
                close = following.get(nxt) if nxt is not None else None
                if nxt is not None and close is not None and tokens[close].text == ")":
                    if out and out[-1] == ".":
                        out.pop()
                        if out and out[-1].lower() == "pg_catalog":
                            out.pop()
                    out.append(f"'{VERSION}'")
                    tokens[nxt] = _Token("space", "")
                    tokens[close] = _Token("space", "")
                    continue
        out.append(text)
    return "".join(out), uses_clock


_SERIAL = re.compile(r'("?[A-Za-z_][\w$]*"?)\s+(small|big)?serial\b', re.IGNORECASE)
_CREATE_TABLE = re.compile(
    r'^\s*create\s+(?:temp(?:orary)?\s+)?table\s+(?:if\s+not\s+exists\s+)?((?:"?\w+"?\.)?"?\w+"?)',
    re.IGNORECASE,
)
_FOR_UPDATE = re.compile(
    r"\s+for\s+(?:no\s+key\s+)?(?:update|share|key\s+share)(?:\s+of\s+[\w\s,\".]+?)?"
    r"(?:\s+nowait|\s+skip\s+locked)?\s*$",
    re.IGNORECASE,
)


def _serials(sql: str) -> str:
    """``id SERIAL`` (DuckDB has no serial types) becomes an integer column taking
    its default from a sequence made first, named as Postgres names it."""
    table_match = _CREATE_TABLE.match(sql)
    if table_match is None or not _SERIAL.search(sql):
        return sql
    table = table_match.group(1).replace('"', "").split(".")[-1]
    sequences = []

    def column(match: re.Match[str]) -> str:
        name = match.group(1).replace('"', "")
        kind = {"small": "SMALLINT", "big": "BIGINT"}.get((match.group(2) or "").lower(), "INTEGER")
        sequence = f"{table}_{name}_seq"
        # MINVALUE 0: a savepoint's rollback can set it back to "never used".
        sequences.append(f"CREATE SEQUENCE IF NOT EXISTS {sequence} MINVALUE 0 START 1")
        return f"{match.group(1)} {kind} DEFAULT nextval('{sequence}')"

    body = _SERIAL.sub(column, sql)
    return "; ".join([*sequences, body])


@functools.lru_cache(maxsize=4096)
def analyze(sql: str) -> Statement:
    """What one statement is (cached by its text: it does not depend on the data)."""
    tokens = _tokens(sql)
    words = [t.text.lower() for t in tokens if t.kind == "word"]
    significant = [t for t in tokens if t.kind not in ("space", "comment")]
    if not significant:
        return Statement(sql, "empty", "")
    first = words[0] if words and significant[0].kind == "word" else ""
    second = words[1] if len(words) > 1 else ""
    if first == "" and significant[0].text == "(":
        first = next((w for w in words if w in ("select", "values", "with")), "select")
    params = max((int(t.text[1:]) for t in tokens if t.kind == "param"), default=0)

    if first in ("begin", "start"):
        level = _ISOLATION.search(sql)
        read_only = re.search(r"\bread\s+only\b", sql, re.I) is not None
        return Statement(
            sql, "begin", "BEGIN", isolation=_level(level), value="read only" if read_only else ""
        )
    if first in ("commit", "end"):
        if second == "prepared":
            return Statement(sql, "unsupported", "COMMIT PREPARED")
        return Statement(sql, "commit", "COMMIT")
    if first in ("rollback", "abort"):
        if second == "prepared":
            return Statement(sql, "unsupported", "ROLLBACK PREPARED")
        if "to" in words[1:3]:
            return Statement(sql, "savepoint", "ROLLBACK", setting="rollback_to", value=words[-1])
        return Statement(sql, "rollback", "ROLLBACK")
    if first in ("savepoint", "release"):
        return Statement(sql, "savepoint", first.upper(), setting=first, value=words[-1])
    if first == "prepare" and second == "transaction":
        return Statement(sql, "unsupported", "PREPARE TRANSACTION")
    if first == "set":
        level = _ISOLATION.search(sql)
        if second == "transaction" or (second == "session" and "characteristics" in words):
            return Statement(sql, "set", "SET", isolation=_level(level), setting=second)
        match = re.match(
            r"\s*set\s+(?:session\s+|local\s+)?([\w.]+)\s*(?:=|\bto\b)\s*(.*)$", sql, re.I | re.S
        )
        if match is None:
            return Statement(sql, "set", "SET", syntax_error='syntax error at or near "SET"')
        return Statement(
            sql,
            "set",
            "SET",
            setting=match.group(1).lower(),
            value=match.group(2).strip().strip("'"),
        )
    if first == "reset":
        return Statement(sql, "noop", "RESET")
    if first == "show":
        name = " ".join(words[1:]) if len(words) > 1 else ""
        return Statement(sql, "show", "SHOW", setting=name)
    if first in ("discard", "close", "unlisten", "listen", "deallocate", "notify"):
        tag = "DISCARD ALL" if first == "discard" else first.upper()
        if first == "close":
            tag = "CLOSE CURSOR ALL"
        return Statement(sql, "noop", tag)
    if "typeinfo_tree" in words:  # asyncpg's type introspection
        return Statement(sql, "introspect", "SELECT", params=1, contexts={1: ("type", "oid[]")})
    if first == "select" and "pg_advisory_unlock_all" in words:
        return Statement(sql, "noop", "SELECT")

    text, uses_clock = _rewrite(list(tokens))
    locks = False
    if first in ("select", "with", "values", "table"):
        stripped = _FOR_UPDATE.sub("", text)
        locks = stripped != text
        text = stripped
    tables = frozenset(_table_names(tokens))
    dml = {"insert": "INSERT", "update": "UPDATE", "delete": "DELETE", "merge": "MERGE"}
    if first == "with":
        verb = next((w for w in words if w in dml), None)
        kind, tag = ("write", dml[verb]) if verb else ("read", "SELECT")
    elif first in dml:
        kind, tag = "write", dml[first]
    elif first in ("select", "values", "table", "explain", "describe", "summarize", "pragma"):
        kind, tag = "read", "SELECT"
    elif first == "truncate":
        kind, tag = "write", "TRUNCATE TABLE"
        text = re.sub(r"^\s*truncate\s+(table\s+)?", "DELETE FROM ", text, flags=re.I)
    elif first in ("create", "drop", "alter", "comment"):
        kind = "ddl"
        rest = [w for w in words[1:] if w not in ("or", "replace", "unique", "temp", "temporary")]
        tag = f"{first.upper()} {rest[0].upper()}" if rest else first.upper()
        if first == "create" and rest and rest[0] == "table":
            text = _serials(text)
    else:
        kind, tag = "write", first.upper()
    statement = Statement(
        sql,
        "write" if locks else kind,
        tag,
        duckdb=text,
        uses_clock=uses_clock,
        locks=locks,
        tables=tables,
        params=params,
    )
    returning = re.search(r"\breturning\b(.*)$", text, re.I | re.S)
    if kind == "write" and returning:
        statement.returning = True
        statement.returning_columns = tuple(
            c.strip().split(".")[-1].strip('"').lower() for c in returning.group(1).split(",")
        )
    if kind in ("write", "read"):
        statement.target = _target(words)
    if params:
        statement.contexts = _contexts(sql, params)
    return statement


def _level(match: re.Match[str] | None) -> str | None:
    if match is None:
        return None
    return re.sub(r"\s+", " ", match.group(1).lower())


def _target(words: list[str]) -> str:
    for verb, marker in (("insert", "into"), ("update", "update"), ("delete", "from")):
        if verb in words:
            index = words.index(marker if verb != "update" else "update")
            if index + 1 < len(words):
                return words[index + 1]
    return ""


def _table_names(tokens: list[_Token]) -> set[str]:
    names = set()
    significant = [t for t in tokens if t.kind not in ("space", "comment")]
    for index, token in enumerate(significant[:-1]):
        if token.kind == "word" and token.text.lower() in (
            "from",
            "join",
            "into",
            "update",
            "table",
        ):
            nxt = significant[index + 1]
            if nxt.kind in ("word", "ident"):
                name = nxt.text.strip('"').lower()
                # schema.table
                if index + 3 < len(significant) and significant[index + 2].text == ".":
                    name = significant[index + 3].text.strip('"').lower()
                names.add(name)
    return names


# ------------------------------------------------------ parameter contexts


def _contexts(sql: str, count: int) -> dict[int, tuple[Any, ...]]:
    """For each ``$n``, where it stands: ``("type", name)`` for a cast,
    ``("column", table or "", column)`` beside a column or as an inserted value,
    ``("array_of_column", ...)`` in ``= ANY($n)``, ``("int8",)`` in LIMIT/OFFSET,
    ``("text",)`` when nothing says (Postgres's choice too)."""
    try:
        import sqlglot
        from sqlglot import exp
    except ImportError:  # pragma: no cover - a dev dependency
        return {}
    try:
        tree = sqlglot.parse_one(sql, read="postgres")
    except Exception:
        return {}
    aliases: dict[str, str] = {}
    for table in tree.find_all(exp.Table):
        if table.alias:
            aliases[table.alias.lower()] = table.name.lower()
    insert_columns: list[str] = []
    insert_table = ""
    if isinstance(tree, exp.Insert):
        schema = tree.this
        if isinstance(schema, exp.Schema):
            insert_table = schema.this.name.lower()
            insert_columns = [c.name.lower() for c in schema.expressions]
        elif isinstance(schema, exp.Table):
            insert_table = schema.name.lower()

    def column_context(column: Any) -> tuple[Any, ...]:
        table = column.table.lower() if column.table else ""
        return ("column", aliases.get(table, table), column.name.lower())

    def beside(other: Any) -> tuple[Any, ...] | None:
        if isinstance(other, exp.Column):
            return column_context(other)
        if isinstance(other, exp.Cast):
            return ("type", other.to.sql(dialect="postgres"))
        if isinstance(other, exp.Literal):
            if other.is_string:
                return ("text",)
            return ("int4",) if other.this.isdigit() else ("numeric",)
        if isinstance(other, exp.Boolean):
            return ("bool",)
        return None

    contexts: dict[int, tuple[Any, ...]] = {}
    for node in tree.find_all(exp.Parameter):
        try:
            number = int(node.this.this if isinstance(node.this, exp.Literal) else node.name)
        except (TypeError, ValueError):
            continue
        context: tuple[Any, ...] | None = None
        parent = node.parent
        if isinstance(parent, exp.Paren):
            parent = parent.parent
        if isinstance(parent, exp.Cast):
            context = ("type", parent.to.sql(dialect="postgres"))
        elif isinstance(parent, (exp.Limit, exp.Offset, exp.Fetch)):
            context = ("int8",)
        elif isinstance(parent, (exp.Like, exp.ILike, exp.DPipe)):
            context = ("text",)
        elif isinstance(parent, exp.Any):
            outer = parent.parent
            if isinstance(outer, exp.Binary):
                other = outer.left if outer.right is parent else outer.right
                found = beside(other)
                if found is not None and found[0] == "column":
                    context = ("array_of_column", *found[1:])
                elif found is not None and found[0] == "type":
                    context = ("type", found[1] + "[]")
        elif isinstance(parent, exp.Binary):
            other = (
                parent.left if parent.right is node or parent.right is node.parent else parent.right
            )
            context = beside(other)
        elif isinstance(parent, (exp.In, exp.Between)):
            context = beside(parent.this)
        elif isinstance(parent, exp.Tuple) and isinstance(parent.parent, exp.Values):
            position = parent.expressions.index(node)
            if insert_table:
                column = insert_columns[position] if position < len(insert_columns) else position
                context = ("insert", insert_table, column)
        elif isinstance(parent, exp.Coalesce):
            for other in [parent.this, *parent.expressions]:
                if other is not node:
                    context = beside(other)
                    break
        if context is not None and number not in contexts:
            contexts[number] = context
    for number in range(1, count + 1):
        contexts.setdefault(number, ("text",))
    return contexts
