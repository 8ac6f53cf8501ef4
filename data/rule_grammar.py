"""Rule conditions: parsed with a real SQL parser (sqlglot, DuckDB dialect), checked against an
explicit grammar, re-rendered for DuckDB. A condition is never pasted into SQL.

The grammar (what `check` accepts; anything else is refused with its position and reason):

    condition  := expr                                  -- must be true/false
    expr       := expr AND expr | expr OR expr | NOT expr | ( expr )
                | value op value                        -- op: = <> != < <= > >=
                | value [NOT] IN (literal, ...)
                | value [NOT] IN LIST list_name         -- membership of a named list (data.rules)
                | value [NOT] BETWEEN value AND value
                | value IS [NOT] NULL
    value      := column | feature | number | 'text' | TRUE | FALSE | NULL
                | value + - * / value | - value | function(value, ...)
    function   := abs | round | floor | ceil | least | greatest | coalesce | lower | upper | length

Names are the dataset's stored columns and its computed features, written plain (letters,
digits, `_`): quoted names, qualified names and non-ASCII look-alikes are refused, as are the
label columns (a rule that reads the answer is no rule). Functions are pure scalar functions
that cannot fail on any row (no `ln`, no casts), so a rule never breaks the queue's query.

Limits are checked on the raw text before the parser sees it (length, bracket depth, tokens),
so a megabyte or a thousand brackets is refused in microseconds, without recursion.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from data.errors import InvalidInput

MAX_LENGTH = 10_000  # characters
MAX_DEPTH = 32  # brackets, and levels of the parsed tree beyond the chain of ANDs/ORs
MAX_TOKENS = 400
MAX_TREE_DEPTH = 220  # a chain of 100 ANDs is about 200 levels deep in sqlglot's tree
MAX_PREFIX_RUN = 8
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
LIST_FUNCTION = "__centinela_list"  # what `IN LIST name` is rewritten to before parsing
LIVE_LISTS = "live_lists"  # the CTE (list_id, value) every query that evaluates rules defines

NUMBER, TEXT, TIMESTAMP, BOOLEAN, NULL, ANY = "number", "text", "timestamp", "boolean", "null", "any"
COMPARISONS = {exp.EQ: "=", exp.NEQ: "<>", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
ARITHMETIC = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/"}
# Function node -> (argument kind, result kind); ANY = the arguments' common kind.
FUNCTIONS: dict[type[exp.Expression], tuple[str, str]] = {
    exp.Abs: (NUMBER, NUMBER), exp.Round: (NUMBER, NUMBER), exp.Floor: (NUMBER, NUMBER), exp.Ceil: (NUMBER, NUMBER),
    exp.Least: (NUMBER, NUMBER), exp.Greatest: (NUMBER, NUMBER), exp.Coalesce: (ANY, ANY),
    exp.Lower: (TEXT, TEXT), exp.Upper: (TEXT, TEXT), exp.Length: (TEXT, NUMBER),
}
FUNCTION_NAMES = ("abs", "round", "floor", "ceil", "least", "greatest", "coalesce", "lower", "upper", "length")


@dataclass(frozen=True)
class Diagnostic:
    """One problem with a condition: a stable code, a message, and where (offsets into the text,
    `end` exclusive), so a page can highlight it."""

    code: str
    message: str
    start: int
    end: int

    def describe(self, text: str) -> str:
        line = text.count("\n", 0, self.start) + 1
        column = self.start - (text.rfind("\n", 0, self.start) + 1) + 1
        where = f"line {line}, column {column}" if "\n" in text else f"column {column}"
        return f"{where}: {self.message}"


class ConditionError(InvalidInput):
    """A condition that does not pass the grammar; the first diagnostic is the message, all of
    them are kept for the page."""

    def __init__(self, text: str, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        first = diagnostics[0]
        more = f" ({len(diagnostics) - 1} more problem{'s' if len(diagnostics) > 2 else ''})" if len(diagnostics) > 1 else ""
        super().__init__(first.describe(text) + more, field="condition")


@dataclass(frozen=True)
class Schema:
    """What a condition may name: columns and features with their kinds and where they live
    (`t`: the transaction table, `f`: the feature table), the dataset's lists, and names that
    exist but are off limits with the reason."""

    names: dict[str, tuple[str, str]]  # name -> (kind, table alias)
    lists: dict[str, int] = field(default_factory=dict)  # list name -> id
    forbidden: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Checked:
    """A condition that passed: its text, the DuckDB SQL it renders to (identifiers quoted and
    qualified, numbers as DOUBLE), and what it reads."""

    text: str
    sql: str
    names: tuple[str, ...]
    lists: tuple[str, ...]

    def reads(self, schema: Schema, alias: str) -> bool:
        return any(schema.names[n][1] == alias for n in self.names)


class _Rejected(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


def _fail(code: str, message: str, start: int, end: int | None = None) -> _Rejected:
    return _Rejected(Diagnostic(code, message, start, max(start + 1, end if end is not None else start + 1)))


def _prescan(text: str) -> None:
    """Limits on the raw text, before any parser runs: size, bracket depth, NUL bytes."""
    if len(text) > MAX_LENGTH:
        raise _fail("too_long", f"the condition has {len(text):,} characters; at most {MAX_LENGTH:,} are accepted.",
                    MAX_LENGTH, len(text))
    if not text.strip():
        raise _fail("empty", "the condition is empty.", 0)
    depth, quote = 0, None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
            if depth > MAX_DEPTH:
                raise _fail("too_deep", f"brackets are nested more than {MAX_DEPTH} deep.", i)
        elif ch == ")":
            depth -= 1
        elif ch == "\x00":
            raise _fail("bad_character", "the condition contains a NUL byte.", i)


def _tokens(text: str) -> list[Token]:
    try:
        tokens = DuckDB().tokenize(text)
    except TokenError as exc:
        raise _fail("syntax", f"cannot read the condition ({str(exc).splitlines()[0][:200]}).", 0) from None
    if len(tokens) > MAX_TOKENS:
        raise _fail("too_long", f"the condition has {len(tokens):,} tokens; at most {MAX_TOKENS} are accepted.",
                    tokens[MAX_TOKENS].start, tokens[-1].end + 1)
    run = 0
    for token in tokens:
        # A run of prefix operators (NOT NOT ..., - - ...) nests the parser's recursion without brackets.
        run = run + 1 if token.token_type in (TokenType.NOT, TokenType.DASH, TokenType.PLUS) else 0
        if run > MAX_PREFIX_RUN:
            raise _fail("too_deep", f"more than {MAX_PREFIX_RUN} NOT / signs in a row.", token.start)
        if token.comments:  # a comment can hide a second statement from a reader
            raise _fail("comment", "comments are not accepted in a condition.", token.end + 1, len(text))
        if token.token_type == TokenType.SEMICOLON:
            raise _fail("statement", "a condition is one expression: ';' is not accepted.", token.start)
    return tokens


def _rewrite_lists(text: str, tokens: list[Token]) -> tuple[str, list[tuple[int, int, int]]]:
    """`value IN LIST name` -> `value IN (__centinela_list('name'))`, which sqlglot parses; returns
    the new text and the edits (original start, original end, new length) to map positions back."""
    edits: list[tuple[int, int, int, str]] = []
    for i, token in enumerate(tokens[:-2]):
        if token.token_type == TokenType.IN and tokens[i + 1].token_type == TokenType.LIST:
            name = tokens[i + 2]
            if name.token_type != TokenType.VAR or not NAME.match(name.text):
                raise _fail("list_name", "IN LIST takes a list's plain name (letters, digits, _).", name.start,
                            name.end + 1)
            replacement = f"({LIST_FUNCTION}('{name.text}'))"
            edits.append((tokens[i + 1].start, name.end + 1, len(replacement), replacement))
    out, last = [], 0
    for start, end, _, replacement in edits:
        out.append(text[last:start])
        out.append(replacement)
        last = end
    out.append(text[last:])
    return "".join(out), [(s, e, n) for s, e, n, _ in edits]


class _Positions:
    """Maps offsets in the rewritten text back to the analyst's text."""

    def __init__(self, edits: list[tuple[int, int, int]]):
        self.edits = edits

    def original(self, offset: int) -> int:
        shift = 0
        for start, end, new_length in self.edits:
            new_start = start + shift
            if offset < new_start:
                break
            if offset < new_start + new_length:
                return start
            shift += new_length - (end - start)
        return offset - shift


def _span(node: exp.Expression) -> tuple[int, int] | None:
    """Offsets (rewritten text) covering a node: from its leftmost to its rightmost token."""
    starts, ends = [], []
    for sub in node.walk():
        meta = sub.meta if sub._meta else {}  # reading .meta on a node without creates an empty dict
        if "start" in meta:
            starts.append(meta["start"])
            ends.append(meta["end"] + 1)
    return (min(starts), max(ends)) if starts else None


def _tree_depth(root: exp.Expression) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:  # iterative: a hostile tree must not exhaust Python's stack here
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.iter_expressions())
    return deepest


class _Checker:
    def __init__(self, text: str, schema: Schema, positions: _Positions, tokens: list[Token]):
        self.text, self.schema, self.positions, self.tokens = text, schema, positions, tokens
        self.diagnostics: list[Diagnostic] = []
        self.names: list[str] = []
        self.lists: list[str] = []

    # --- positions ---------------------------------------------------------------------------
    def where(self, node: exp.Expression) -> tuple[int, int]:
        span = _span(node)
        if span is None:
            return 0, len(self.text)
        return self.positions.original(span[0]), max(self.positions.original(span[1] - 1) + 1, 1)

    def function_start(self, node: exp.Expression) -> tuple[int, int]:
        """A function's name: the name token before the bracket that opens its arguments."""
        start, end = self.where(node)
        before = [t for t in self.tokens if t.end < start and t.token_type != TokenType.L_PAREN]
        if before:
            return before[-1].start, end
        return start, end

    def problem(self, code: str, message: str, node: exp.Expression, *, function: bool = False) -> None:
        start, end = self.function_start(node) if function else self.where(node)
        self.diagnostics.append(Diagnostic(code, message, start, max(end, start + 1)))

    # --- the walk ----------------------------------------------------------------------------
    def kind(self, node: exp.Expression) -> str:
        """The node's kind (number, text, timestamp, boolean, null), checking it and its children;
        `any` after a problem, so one mistake is reported once."""
        if isinstance(node, exp.Paren):
            return self.kind(node.this)
        if isinstance(node, exp.Column):
            return self.column(node)
        if isinstance(node, exp.Literal):
            return TEXT if node.is_string else NUMBER
        if isinstance(node, exp.Boolean):
            return BOOLEAN
        if isinstance(node, exp.Null):
            return NULL
        if isinstance(node, (exp.And, exp.Or)):
            for side in (node.left, node.right):
                self.expect_boolean(side, node.key.upper())
            return BOOLEAN
        if isinstance(node, exp.Not):
            self.expect_boolean(node.this, "NOT")
            return BOOLEAN
        if type(node) in COMPARISONS:
            self.comparable(node.left, node.right, COMPARISONS[type(node)])
            return BOOLEAN
        if type(node) in ARITHMETIC:
            for side in (node.left, node.right):
                self.expect(side, NUMBER, f"'{ARITHMETIC[type(node)]}'")
            return NUMBER
        if isinstance(node, exp.Neg):
            self.expect(node.this, NUMBER, "'-'")
            return NUMBER
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                self.problem("syntax", "IS takes NULL or NOT NULL only.", node.expression)
            self.kind(node.this)
            return BOOLEAN
        if isinstance(node, exp.Between):
            self.comparable(node.this, node.args["low"], "BETWEEN")
            self.comparable(node.this, node.args["high"], "BETWEEN")
            return BOOLEAN
        if isinstance(node, exp.In):
            return self.in_(node)
        if type(node) in FUNCTIONS:
            return self.function(node)
        return self.refuse(node)

    def refuse(self, node: exp.Expression) -> str:
        if isinstance(node, exp.Subquery | exp.Select | exp.Query):
            self.problem("subquery", "subqueries are not accepted: a rule reads one transaction's columns and features.", node)
        elif isinstance(node, exp.Window):
            self.problem("window", "window functions (OVER) are not accepted: use the features, which are the windows.",
                         node)
        elif isinstance(node, exp.AggFunc):
            self.problem("aggregate", f"aggregate function {node.sql_name().lower()}() is not accepted: a rule looks at "
                         "one transaction (the features hold the customer's and merchant's history).", node, function=True)
        elif isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            self.problem("function", f"function {name}() is not accepted; the functions are: "
                         f"{', '.join(FUNCTION_NAMES)}.", node, function=True)
        elif isinstance(node, exp.Star):
            self.problem("syntax", "'*' is not accepted here.", node)
        elif isinstance(node, exp.Cast):
            self.problem("cast", "casts are not accepted: compare numbers with numbers and text with text.", node)
        elif isinstance(node, exp.Placeholder | exp.Parameter):
            self.problem("syntax", "parameters are not accepted: write the value itself.", node)
        elif node.parent is None and not isinstance(node, exp.Condition):  # a whole statement: COPY, ATTACH, PRAGMA
            self.diagnostics.append(Diagnostic("statement", f"{node.key.upper()} statements are not accepted: a condition "
                                               "is one true/false expression.", 0, len(self.text)))
        else:
            label = node.key.upper()
            self.problem("syntax", f"{label} is not part of the rule grammar (comparisons, AND/OR/NOT, arithmetic, "
                         "IN, BETWEEN, IS NULL, IN LIST and a few functions).", node)
        return ANY

    def column(self, node: exp.Column) -> str:
        ident = node.this
        if node.table or node.args.get("db"):
            self.problem("qualified", f"write the plain name {ident.name!r}, without a table.", node)
            return ANY
        if not isinstance(ident, exp.Identifier):
            return self.refuse(ident)
        name = ident.name
        if ident.quoted:
            self.problem("quoted", f"quoted names are not accepted: write {name!r} without quotes "
                         "(names are letters, digits and _).", node)
            return ANY
        if not name.isascii():
            plain = "".join(c for c in name if c.isascii())
            self.problem("lookalike", f"the name `{name}` has characters that are not plain letters (look-alikes such "
                         f"as Cyrillic or accented letters){self.suggestion(plain)}", node)
            return ANY
        key = name.lower()
        if key in self.schema.forbidden:
            self.problem("forbidden", f"`{name}` cannot be used: {self.schema.forbidden[key]}", node)
            return ANY
        if key not in self.schema.names:
            self.problem("unknown_column", f"unknown column `{name}`{self.suggestion(key)}", node)
            return ANY
        self.names.append(key)
        return self.schema.names[key][0]

    def suggestion(self, name: str) -> str:
        close = difflib.get_close_matches(name.lower(), list(self.schema.names), n=1, cutoff=0.6)
        return f" — did you mean `{close[0]}`?" if close else "."

    def expect(self, node: exp.Expression, kind: str, where: str) -> None:
        found = self.kind(node)
        if found not in (kind, ANY, NULL):
            self.problem("type", f"{where} takes {kind}s, but `{self.source(node)}` is {self.article(found)}.", node)

    def expect_boolean(self, node: exp.Expression, where: str) -> None:
        found = self.kind(node)
        if found not in (BOOLEAN, ANY, NULL):
            hint = f" (compare it, e.g. `{self.source(node)} = 1`)" if found == NUMBER else ""
            self.problem("type", f"{where} takes true/false conditions, but `{self.source(node)}` is "
                         f"{self.article(found)}{hint}.", node)

    def comparable(self, left: exp.Expression, right: exp.Expression, op: str) -> None:
        kinds = (self.kind(left), self.kind(right))
        known = [k for k in kinds if k not in (ANY, NULL)]
        if len(known) == 2 and known[0] != known[1]:
            self.problem("type", f"'{op}' compares {self.article(kinds[0])} (`{self.source(left)}`) with "
                         f"{self.article(kinds[1])} (`{self.source(right)}`).", right)

    def in_(self, node: exp.In) -> str:
        if node.args.get("query") is not None:
            return self.refuse(node.args["query"])
        if node.args.get("unnest") is not None or node.args.get("field") is not None:
            return self.refuse(node)
        items = node.expressions
        if len(items) == 1 and isinstance(items[0], exp.Anonymous) and items[0].name == LIST_FUNCTION:
            name = items[0].expressions[0].name
            if name.lower() not in self.schema.lists:
                known = ", ".join(sorted(self.schema.lists)) or "none yet"
                close = difflib.get_close_matches(name.lower(), list(self.schema.lists), n=1)
                self.problem("unknown_list", f"no list named `{name}`" + (f" — did you mean `{close[0]}`?" if close
                             else f" (lists: {known})."), items[0])
            else:
                self.lists.append(name.lower())
            self.kind(node.this)
            return BOOLEAN
        for item in items:
            if not isinstance(item, exp.Literal | exp.Neg | exp.Null | exp.Boolean):
                self.problem("in_values", "IN takes a list of values (numbers or 'text'); use IN LIST for a named list.",
                             item)
                continue
            self.comparable(node.this, item, "IN")
        return BOOLEAN

    def function(self, node: exp.Expression) -> str:
        wanted, result = FUNCTIONS[type(node)]
        arguments = list(node.iter_expressions())
        if isinstance(node, exp.Round) and len(arguments) == 2 and not isinstance(arguments[1], exp.Literal):
            self.problem("function", "round() takes a whole number of decimals as its second argument.", arguments[1])
        kinds = [self.kind(a) for a in arguments]
        if wanted == ANY:
            known = {k for k in kinds if k not in (ANY, NULL)}
            if len(known) > 1:
                self.problem("type", f"{node.sql_name().lower()}() mixes {' and '.join(sorted(known))}.", node,
                             function=True)
            return next(iter(known)) if len(known) == 1 else ANY
        for argument, found in zip(arguments, kinds, strict=True):
            if found not in (wanted, ANY, NULL):
                self.problem("type", f"{node.sql_name().lower()}() takes {wanted}s, but `{self.source(argument)}` is "
                             f"{self.article(found)}.", argument)
        return result

    def source(self, node: exp.Expression) -> str:
        start, end = self.where(node)
        return self.text[start:end][:60]

    @staticmethod
    def article(kind: str) -> str:
        return {NUMBER: "a number", TEXT: "text", TIMESTAMP: "a timestamp", BOOLEAN: "a true/false condition",
                NULL: "NULL"}.get(kind, kind)


def _render(tree: exp.Expression, schema: Schema) -> str:
    """The checked tree as DuckDB SQL: names qualified by their table and quoted, numbers as
    DOUBLE (no integer overflow on any row), list membership as a lookup in `live_lists`."""

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column):
            kind, alias = schema.names[node.name.lower()]
            column = exp.column(node.name.lower(), table=alias, quoted=True)
            return exp.cast(column, "DOUBLE") if kind == NUMBER else column
        if isinstance(node, exp.Literal) and not node.is_string:
            return exp.cast(exp.Literal.number(node.this), "DOUBLE")
        if isinstance(node, exp.In) and len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Anonymous) \
                and node.expressions[0].name == LIST_FUNCTION:
            list_id = int(schema.lists[node.expressions[0].expressions[0].name.lower()])
            lookup = exp.select("value").from_(LIVE_LISTS).where(f"list_id = {list_id}")
            return exp.In(this=exp.cast(rewrite(node.this.copy()), "VARCHAR"), query=exp.Subquery(this=lookup))
        return node

    return tree.copy().transform(rewrite).sql(dialect="duckdb", identify=True)


def diagnose(text: str, schema: Schema) -> tuple[Checked | None, list[Diagnostic]]:
    """Check a condition: the checked condition and no diagnostics, or None and every problem
    found (the first is the one to fix first)."""
    text = text if isinstance(text, str) else str(text)
    try:
        _prescan(text)
        tokens = _tokens(text)
        rewritten, edits = _rewrite_lists(text, tokens)
        positions = _Positions(edits)
        try:
            statements = sqlglot.parse(rewritten, read="duckdb")
        except RecursionError:  # a backstop: the limits above are meant to refuse such text before the parser
            raise _fail("too_deep", "the condition is nested too deeply; split it into several rules.", 0,
                        len(text)) from None
        except ParseError as exc:
            error = exc.errors[0] if exc.errors else {}
            start = positions.original(max(0, int(error.get("start_context") and len(error["start_context"]) or 0)))
            raise _fail("syntax", f"cannot parse the condition: {error.get('description') or str(exc)[:200]}.",
                        start, start + len(str(error.get("highlight") or " "))) from None
        statements = [s for s in statements if s is not None]
        if len(statements) != 1:
            raise _fail("statement", "a condition is one expression.", 0, len(text))
        tree = statements[0]
        if _tree_depth(tree) > MAX_TREE_DEPTH:
            raise _fail("too_deep", "the condition is nested too deeply; split it into several rules.", 0, len(text))
    except _Rejected as rejected:
        return None, [rejected.diagnostic]
    checker = _Checker(text, schema, positions, tokens)
    try:
        kind = checker.kind(tree)
        sql = _render(tree, schema) if not checker.diagnostics else ""
    except RecursionError:
        return None, [Diagnostic("too_deep", "the condition is nested too deeply; split it into several rules.", 0,
                                 max(1, len(text)))]
    if not checker.diagnostics and kind not in (BOOLEAN, ANY):
        checker.problem("type", f"a condition must be true or false, but this is {checker.article(kind)}.", tree)
    if checker.diagnostics:
        return None, sorted(checker.diagnostics, key=lambda d: d.start)
    return Checked(text, sql, tuple(dict.fromkeys(checker.names)), tuple(dict.fromkeys(checker.lists))), []


def check(text: str, schema: Schema) -> Checked:
    """A checked condition, or ConditionError (InvalidInput) naming the first problem's position."""
    checked, diagnostics = diagnose(text, schema)
    if checked is None:
        raise ConditionError(text, diagnostics)
    return checked
