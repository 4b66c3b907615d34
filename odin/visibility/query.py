"""Temporal's list-filter language: a pure tokenizer and recursive-descent parser into an AST.

    query     := [expr] [ORDER BY name [ASC|DESC] {, name [ASC|DESC]}] | [expr] GROUP BY name {, name}
    expr      := and {OR and}
    and       := primary {AND primary}
    primary   := '(' expr ')' | predicate
    predicate := name op value | name [NOT] IN '(' value {, value} ')'
               | name [NOT] BETWEEN value AND value | name [NOT] STARTS_WITH value
               | name IS [NOT] NULL
    op        := = | != | <> | < | > | <= | >=
    value     := 'string' | "string" | number | TRUE | FALSE

Names may be back-quoted. ``render`` turns an AST back into query text that parses to the same AST.
Every error is a ``QueryError`` carrying the character offset where it was found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Value = str | int | float | bool


class QueryError(ValueError):
    def __init__(self, message: str, position: int):
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Comparison:
    name: str
    op: str  # = != < > <= >=
    value: Value


@dataclass(frozen=True)
class In:
    name: str
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True)
class Between:
    name: str
    low: Value
    high: Value
    negated: bool = False


@dataclass(frozen=True)
class StartsWith:
    name: str
    prefix: str
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    name: str
    negated: bool = False


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Comparison | In | Between | StartsWith | IsNull | And | Or


@dataclass(frozen=True)
class Query:
    where: Node | None = None
    order_by: tuple[tuple[str, bool], ...] = ()  # (name, descending)
    group_by: tuple[str, ...] = field(default=())


# -- tokens ----------------------------------------------------------------------------------

KEYWORDS = {"AND", "OR", "NOT", "IN", "BETWEEN", "STARTS_WITH", "IS", "NULL", "ORDER", "GROUP", "BY", "ASC", "DESC", "TRUE", "FALSE"}
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<backquoted>`[^`]*`)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass
class Token:
    kind: str  # op punct number word name string end
    text: str
    pos: int
    value: Value | None = None  # a string's text, a number's value, a name's unquoted text


def _unquote(raw: str) -> str:
    quote, body = raw[0], raw[1:-1]
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(body[i + 1])
            i += 2
        elif ch == quote and i + 1 < len(body) and body[i + 1] == quote:
            out.append(quote)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    if "\x00" in text:  # no database stores it in text; refuse it here, with its position
        raise QueryError("NUL character", text.index("\x00"))
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] in "'\"`":
                raise QueryError("unterminated quoted text", pos)
            raise QueryError(f"unexpected character {text[pos]!r}", pos)
        kind = m.lastgroup
        assert kind is not None  # every alternative of _TOKEN is a named group
        raw = m.group()
        if kind == "number":
            try:
                value: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
            except ValueError:  # more digits than Python converts
                raise QueryError("number too long", pos) from None
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise QueryError("integer out of the 64-bit range", pos)
            tokens.append(Token("number", raw, pos, value))
        elif kind == "word":
            upper = raw.upper()
            tokens.append(Token("word", upper, pos, raw) if upper in KEYWORDS else Token("name", raw, pos, raw))
        elif kind == "backquoted":
            if len(raw) == 2:
                raise QueryError("empty attribute name", pos)
            tokens.append(Token("name", raw, pos, raw[1:-1]))
        elif kind == "string":
            tokens.append(Token("string", raw, pos, _unquote(raw)))
        elif kind != "ws":
            tokens.append(Token(kind, raw, pos, raw))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# -- parser ----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def is_word(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.text in words

    def expect_word(self, word: str) -> Token:
        if not self.is_word(word):
            raise QueryError(f"expected {word}", self.tok.pos)
        return self.take()

    def expect_punct(self, ch: str) -> Token:
        if self.tok.kind != "punct" or self.tok.text != ch:
            raise QueryError(f"expected {ch!r}", self.tok.pos)
        return self.take()

    def query(self) -> Query:
        where = None
        if self.tok.kind != "end" and not self.is_word("ORDER", "GROUP"):
            where = self.expr()
        order: list[tuple[str, bool]] = []
        group: list[str] = []
        if self.is_word("ORDER"):
            self.take()
            self.expect_word("BY")
            while True:
                name = self.name()
                desc = False
                if self.is_word("ASC", "DESC"):
                    desc = self.take().text == "DESC"
                order.append((name, desc))
                if self.tok.kind == "punct" and self.tok.text == ",":
                    self.take()
                    continue
                break
        elif self.is_word("GROUP"):
            self.take()
            self.expect_word("BY")
            group.append(self.name())
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.take()
                group.append(self.name())
        if self.tok.kind != "end":
            raise QueryError(f"unexpected {self.tok.text!r}", self.tok.pos)
        return Query(where, tuple(order), tuple(group))

    def expr(self) -> Node:
        items = [self.conjunction()]
        while self.is_word("OR"):
            self.take()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Node:
        items = [self.primary()]
        while self.is_word("AND"):
            self.take()
            items.append(self.primary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def primary(self) -> Node:
        if self.tok.kind == "punct" and self.tok.text == "(":
            self.take()
            node = self.expr()
            self.expect_punct(")")
            return node
        return self.predicate()

    def name(self) -> str:
        if self.tok.kind != "name":
            raise QueryError("expected an attribute name", self.tok.pos)
        value = self.take().value
        assert isinstance(value, str)
        return value

    def value(self) -> Value:
        t = self.tok
        if t.kind in ("string", "number"):
            self.take()
            assert t.value is not None
            return t.value
        if self.is_word("TRUE", "FALSE"):
            self.take()
            return t.text == "TRUE"
        raise QueryError("expected a value", t.pos)

    def predicate(self) -> Node:
        name = self.name()
        if self.tok.kind == "op":
            op = self.take().text
            return Comparison(name, "!=" if op == "<>" else op, self.value())
        negated = False
        if self.is_word("NOT"):
            self.take()
            negated = True
        if self.is_word("IN"):
            self.take()
            self.expect_punct("(")
            values = [self.value()]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.take()
                values.append(self.value())
            self.expect_punct(")")
            return In(name, tuple(values), negated)
        if self.is_word("BETWEEN"):
            self.take()
            low = self.value()
            self.expect_word("AND")
            return Between(name, low, self.value(), negated)
        if self.is_word("STARTS_WITH"):
            self.take()
            at = self.tok.pos
            prefix = self.value()
            if not isinstance(prefix, str):
                raise QueryError("STARTS_WITH needs a string", at)
            return StartsWith(name, prefix, negated)
        if not negated and self.is_word("IS"):
            self.take()
            is_not = False
            if self.is_word("NOT"):
                self.take()
                is_not = True
            self.expect_word("NULL")
            return IsNull(name, is_not)
        raise QueryError("expected an operator", self.tok.pos)


def parse(text: str) -> Query:
    return _Parser(text).query()


# -- rendering -------------------------------------------------------------------------------


def _name(name: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name) and name.upper() not in KEYWORDS:
        return name
    return f"`{name}`"


def _value(v: Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + v.replace("\\", "\\\\").replace("'", "''") + "'"


def render_node(node: Node) -> str:
    if isinstance(node, Comparison):
        return f"{_name(node.name)} {node.op} {_value(node.value)}"
    if isinstance(node, In):
        values = ", ".join(_value(v) for v in node.values)
        return f"{_name(node.name)} {'NOT ' if node.negated else ''}IN ({values})"
    if isinstance(node, Between):
        neg = "NOT " if node.negated else ""
        return f"{_name(node.name)} {neg}BETWEEN {_value(node.low)} AND {_value(node.high)}"
    if isinstance(node, StartsWith):
        return f"{_name(node.name)} {'NOT ' if node.negated else ''}STARTS_WITH {_value(node.prefix)}"
    if isinstance(node, IsNull):
        return f"{_name(node.name)} IS {'NOT ' if node.negated else ''}NULL"
    joiner = " AND " if isinstance(node, And) else " OR "
    return joiner.join(f"({render_node(item)})" for item in node.items)


def render(query: Query) -> str:
    parts = []
    if query.where is not None:
        parts.append(render_node(query.where))
    if query.order_by:
        parts.append("ORDER BY " + ", ".join(f"{_name(n)} {'DESC' if d else 'ASC'}" for n, d in query.order_by))
    if query.group_by:
        parts.append("GROUP BY " + ", ".join(_name(n) for n in query.group_by))
    return " ".join(parts)
