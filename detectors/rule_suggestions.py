"""Suggested rules: short, readable conditions drawn from the labelled fraud of a period.

An analyst adopts a rule only if it reads like something a person would write and keeps
working on the next weeks, so a suggestion is a conjunction of at most `max_depth` bounds on
features (`amount > 800 AND cust_count_1h > 3`), not a model. The conditions are the paths
of a shallow decision tree (scikit-learn's CART) whose nodes are mostly fraud, grown by
sequential covering: after each tree, the fraud its accepted rules catch is taken out and
another tree is grown on the fraud that is left, so a second fraud pattern is not hidden
behind the first one's bigger leaves.

Every figure a suggestion carries is measured again on the unweighted training rows, exactly
as the condition's text reads: the tree is grown on a weighted subsample (all fraud, a seeded
sample of the legitimate rows) and its own estimates are neither counts nor unbiased.

Missing values (NaN, None, pd.NA) follow SQL. In SQL `x > 5` and `x <= 5` are both NULL, so
not true, where x is NULL, and a condition is a plain SQL conjunction: **a term on x never
matches a row where x is missing**. The tree is grown with scikit-learn's native missing-value
support (it sends missing values down whichever side fits better), but a rule drawn from a node
keeps only the node's rows whose tested columns are present; that is the "exclude the rows"
choice, the only one an AND of `<=` / `>` can state honestly. A path whose strength came from
the missing rows it routed re-measures weak and is dropped, instead of being shown with figures
its text would not reproduce. `matches` evaluates conditions the same way (NaN compares false),
so a backtest on a DataFrame and `SELECT count(*) ... WHERE <condition>` in DuckDB agree.
Beware that a real floating-point NaN stored in a DuckDB DOUBLE column is *not* NULL: DuckDB
orders NaN above every number, so `x > 5` is true for it. pandas NaN registered with DuckDB
arrives as NULL; tables that may hold NaN should be read with `nullif(x, 'nan'::DOUBLE)`.

Thresholds are rounded to the fewest significant digits (integers for integer-valued columns
such as counts, flags and hours) that change at most `ROUNDING_TOLERANCE` of the rule's
training matches, and the rule is measured after rounding.

Suggestions are ordered by fraud caught x precision. One is listed only if what it adds to the
ones above it would be worth a rule of its own (enough new fraud, at `min_precision` among the
rows they do not already match), which drops duplicates and subsets of a better rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype
from sklearn.tree import DecisionTreeClassifier

from data.db import quote_ident
from data.errors import InvalidInput

Op = Literal["<=", ">"]
OPS: tuple[Op, ...] = ("<=", ">")

LEGIT_SAMPLE = 60_000  # legitimate rows a tree is grown on (every fraud row is kept): ~0.5 s a tree at 36 features
ROUNDING_TOLERANCE = 0.01  # share of a rule's training matches a rounded threshold may add or remove
MAX_DIGITS = 6  # beyond this many significant digits a threshold keeps the tree's own value
MIN_SUPPORT = 5  # fraud rows a leaf, and a rule, must hold at least ...
SUPPORT_SHARE = 0.005  # ... or this share of the period's fraud, whichever is more
MAX_DEPTH = 6  # deeper paths are not "short, readable" any more
# Fraud's least share of the tree's weight (its real share when more: about the period as it is).
# Weighting fraud up trades precision for recall: a balanced tree's "mostly fraud" leaves are a few
# per cent fraud unweighted. On 8 generated datasets of 40k rows (suggest on days 0-35, check on
# 36-59), 1% gave 40 rules of which 32 kept precision > 0.5 later; 10% gave 19 (17 kept), 20% gave 12
# and none at all on one dataset; on 1M rows 1% gave 5 rules, all above 0.5 later, balanced 2.
FRAUD_WEIGHT = 0.01
FIT_LIMIT = 1e30  # the tree works in float32: larger magnitudes (and infinities) are clipped for fitting only
EXTRA_ROUNDS = 3  # trees grown beyond max_rules when rounds find rules that do not make the list

_PLAIN = re.compile(r"[a-z_][a-z0-9_]*\Z")
# DuckDB's reserved keywords (duckdb_keywords()): a column of such a name must be quoted.
_RESERVED = frozenset({
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "both", "case", "cast",
    "check", "collate", "column", "constraint", "create", "default", "deferrable", "desc", "describe",
    "distinct", "do", "else", "end", "except", "false", "fetch", "for", "foreign", "from", "group", "having",
    "in", "initially", "intersect", "into", "lambda", "lateral", "leading", "limit", "not", "null", "offset",
    "on", "only", "or", "order", "pivot", "pivot_longer", "pivot_wider", "placing", "primary", "qualify",
    "references", "returning", "select", "show", "some", "summarize", "symmetric", "table", "then", "to",
    "trailing", "true", "union", "unique", "unpivot", "using", "variadic", "when", "where", "window", "with",
})


def sql_name(column: str) -> str:
    """A column as a condition names it: bare when it is a plain lower-case identifier (every
    engineered feature), double-quoted otherwise, so an imported column named `Monto (S/)`
    or `order` still reads as one identifier in SQL."""
    return column if _PLAIN.match(column) and column not in _RESERVED else quote_ident(column)


def format_number(value: float) -> str:
    """A threshold as SQL text: integers without a decimal point, others positional (never
    `1e-05`), the shortest text that reads back as exactly `value`."""
    if value == math.floor(value) and abs(value) < 1e15:
        return str(int(value))
    return np.format_float_positional(value, trim="-")


@dataclass(frozen=True)
class Term:
    """One bound of a condition: `column op value`; false where the column is missing."""

    column: str
    op: Op
    value: float

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise InvalidInput(f"a suggested rule's operator must be <= or >, not {self.op!r}.", field="op")
        if not math.isfinite(self.value):
            raise InvalidInput(f"a suggested rule's threshold must be a finite number, not {self.value}.",
                               field="value")

    @property
    def sql(self) -> str:
        return f"{sql_name(self.column)} {self.op} {format_number(self.value)}"

    def mask(self, values: np.ndarray) -> np.ndarray:
        """Rows this term holds for; NaN compares false either way, as NULL does in a WHERE."""
        return values > self.value if self.op == ">" else values <= self.value


def render(terms: Sequence[Term]) -> str:
    """The condition's text: the terms joined by AND, in order (the tree's root split first)."""
    return " AND ".join(term.sql for term in terms)


@dataclass(frozen=True)
class SuggestedRule:
    """A draft rule and how it did on the period it was drawn from.

    `terms` is the rule itself; `condition` is its text, checked to be `render(terms)` so the
    two can never disagree (a DataFrame backtest with `matches` and a SQL one read the same rule).
    """

    condition: str  # e.g. "amount > 812.5 AND cust_count_1h > 3": column names, <= / >, AND only
    fraud: int  # training-period fraud rows it matches
    legitimate: int  # training-period legitimate rows it matches
    precision: float  # fraud / (fraud + legitimate) on the training period
    terms: tuple[Term, ...] = ()

    def __post_init__(self) -> None:
        if not self.terms or render(self.terms) != self.condition:
            raise InvalidInput("a suggested rule's condition must be the rendering of its terms.", field="condition")

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the condition reads, each once, in order."""
        return tuple(dict.fromkeys(term.column for term in self.terms))

    @property
    def score(self) -> float:
        """What suggestions are ordered by: fraud caught, discounted by the share of false alarms."""
        return self.fraud * self.precision


def _values(series: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for every kind of missing (NaN, None, pd.NA); bools as 0/1."""
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def matches(frame: pd.DataFrame, rule: SuggestedRule | Sequence[Term]) -> np.ndarray:
    """Which rows of `frame` a rule matches, as a boolean array: what `WHERE <condition>` keeps
    in SQL (a term on a missing value is not true). Vectorized; the terms, not the text, are
    evaluated, and the text is rendered from them."""
    terms = rule.terms if isinstance(rule, SuggestedRule) else tuple(rule)
    out = np.ones(len(frame), dtype=bool)
    for term in terms:
        if term.column not in frame.columns:
            raise InvalidInput(f"the rule reads column '{term.column}', which this data does not have.",
                               column=term.column)
        out &= term.mask(_values(frame[term.column]))
    return out


def _check_args(max_rules: int, max_depth: int, min_precision: float, random_state: int) -> None:
    if isinstance(max_rules, bool) or not isinstance(max_rules, int | np.integer) or max_rules < 1:
        raise InvalidInput(f"the number of suggestions must be a whole number of at least 1, not {max_rules!r}.",
                           field="max_rules")
    if isinstance(max_depth, bool) or not isinstance(max_depth, int | np.integer) or not 1 <= max_depth <= MAX_DEPTH:
        raise InvalidInput(f"a suggested rule has 1 to {MAX_DEPTH} conditions, not {max_depth!r}.", field="max_depth")
    if not isinstance(min_precision, int | float | np.number) or not 0.0 <= float(min_precision) <= 1.0:
        raise InvalidInput(f"the minimum precision must be between 0 and 1, not {min_precision!r}.",
                           field="min_precision")
    if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer) or random_state < 0:
        raise InvalidInput(f"the random state must be a whole number of at least 0, not {random_state!r}.",
                           field="random_state")


def _labels(is_fraud: np.ndarray, rows: int) -> np.ndarray:
    """The labels as a bool array; unlabelled rows (NaN) must be left out by the caller, not guessed."""
    y = np.asarray(is_fraud)
    if y.ndim != 1 or len(y) != rows:
        raise InvalidInput(f"need one label per row: {rows:,} rows but labels of shape {y.shape}.", field="is_fraud")
    if y.dtype == bool:
        return y
    try:
        numeric = y.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidInput("labels must be true/false or 1/0.", field="is_fraud") from None
    if not np.isin(numeric, (0.0, 1.0)).all():
        raise InvalidInput("labels must be true/false or 1/0; leave unlabelled rows out.", field="is_fraud")
    return numeric == 1.0


def _columns(frame: pd.DataFrame) -> list[str]:
    """The columns a rule may read: numeric or boolean (not complex), named by a non-empty string."""
    if frame.columns.duplicated().any():
        names = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise InvalidInput(f"column names must be unique; repeated: {', '.join(names)}.", field="frame")
    out = []
    for name in frame.columns:
        dtype = frame[name].dtype
        if not isinstance(name, str) or not name or "\x00" in name:
            continue
        if is_bool_dtype(dtype) or (is_numeric_dtype(dtype) and not is_complex_dtype(dtype)):
            out.append(name)
    return out


def _integral(values: np.ndarray) -> bool:
    """Whether every present value is a whole number (counts, flags, hours): such a column's
    threshold is written as the integer below it, which matches exactly the same rows."""
    present = values[~np.isnan(values)]
    with np.errstate(invalid="ignore"):
        return bool(np.all(present == np.floor(present)))


def _simplify(terms: Sequence[Term]) -> tuple[Term, ...] | None:
    """Merge bounds on the same column (x > 3 AND x > 5 is x > 5), columns in order of first
    use; None when the bounds leave no value (never for a tree's path, kept for safety)."""
    lower: dict[str, float] = {}
    upper: dict[str, float] = {}
    order: list[str] = []
    for term in terms:
        if term.column not in order:
            order.append(term.column)
        if term.op == ">":
            lower[term.column] = max(lower.get(term.column, -math.inf), term.value)
        else:
            upper[term.column] = min(upper.get(term.column, math.inf), term.value)
    out: list[Term] = []
    for column in order:
        lo, hi = lower.get(column), upper.get(column)
        if lo is not None and hi is not None and lo >= hi:
            return None
        if lo is not None:
            out.append(Term(column, ">", lo))
        if hi is not None:
            out.append(Term(column, "<=", hi))
    return tuple(out)


def _round_sig(value: float, digits: int) -> float:
    return float(f"{value:.{digits - 1}e}")


class _Data:
    """The training period as float64 columns, with the labels and what rules are measured on."""

    def __init__(self, frame: pd.DataFrame, y: np.ndarray, columns: list[str]):
        self.y = y
        self.columns = columns
        self.values = {c: _values(frame[c]) for c in columns}
        self.integral = {c: _integral(v) for c, v in self.values.items()}

    def mask(self, terms: Sequence[Term]) -> np.ndarray:
        out = np.ones(len(self.y), dtype=bool)
        for term in terms:
            out &= term.mask(self.values[term.column])
        return out

    def counts(self, mask: np.ndarray) -> tuple[int, int]:
        fraud = int(np.count_nonzero(mask & self.y))
        return fraud, int(np.count_nonzero(mask)) - fraud

    def readable(self, terms: tuple[Term, ...]) -> tuple[Term, ...]:
        """Each threshold rounded to the fewest significant digits that add or remove at most
        `ROUNDING_TOLERANCE` of the rule's training matches (whole numbers for integer columns,
        which changes none); failing that, the tree's own threshold."""
        out = list(terms)
        budget = ROUNDING_TOLERANCE * int(np.count_nonzero(self.mask(terms)))  # shared by all the terms
        for i, term in enumerate(out):
            values = self.values[term.column]
            if self.integral[term.column]:
                out[i] = Term(term.column, term.op, float(math.floor(term.value)))
                continue
            others = self.mask(out[:i] + out[i + 1:])
            near = values[others]
            for digits in range(1, MAX_DIGITS + 1):
                candidate = _round_sig(term.value, digits)
                lo, hi = min(candidate, term.value), max(candidate, term.value)
                # Rows whose side flips when the bound moves from the tree's value to `candidate`.
                flips = int(np.count_nonzero((near > lo) & (near <= hi)))
                if flips <= budget:
                    out[i] = Term(term.column, term.op, candidate)
                    budget -= flips
                    break
        return _simplify(out) or terms


def _paths(tree: DecisionTreeClassifier, columns: list[str]) -> list[tuple[Term, ...]]:
    """The condition of every node below the root (a node's path is a rule, leaf or not: a
    parent whose children are both mostly fraud is the shorter rule). A split that only
    separates missing from present values (threshold +inf) states nothing an AND of bounds
    can: its present side is dropped from the path (measured again without it), its missing
    side is not a rule."""
    t = tree.tree_
    out: list[tuple[Term, ...]] = []
    stack: list[tuple[int, tuple[Term, ...] | None]] = [(0, ())]
    while stack:  # at most 2 ** (max_depth + 1) nodes: a loop over the tree, not over rows
        node, terms = stack.pop()
        if node != 0 and terms:
            out.append(terms)
        left, right = int(t.children_left[node]), int(t.children_right[node])
        if left < 0 or terms is None:
            continue
        column, threshold = columns[int(t.feature[node])], float(t.threshold[node])
        if math.isfinite(threshold):
            stack.append((left, terms + (Term(column, "<=", threshold),)))
            stack.append((right, terms + (Term(column, ">", threshold),)))
        else:
            stack.append((left, terms))
            stack.append((right, None))
    return out


def suggest_rules(frame: pd.DataFrame, is_fraud: np.ndarray, *, max_rules: int = 5, max_depth: int = 3,
                  min_precision: float = 0.5, random_state: int = 0) -> list[SuggestedRule]:
    """Draft rules for the fraud of a labelled period, best first (by fraud caught x precision).

    `frame` is the period's rows: every numeric or boolean column is a feature a rule may read
    (leave out identifiers, row numbers, timestamps and the label itself); other columns are
    ignored. `is_fraud` is one true/false label per row, by position. Each suggestion matches at least
    `min_precision` fraud on these rows, catches fraud no better suggestion catches, and is no
    subset of a better one. Returns [] when the period has no fraud, no legitimate rows or no
    numeric column: there is nothing to tell apart. Deterministic for a given `random_state`.
    """
    _check_args(max_rules, max_depth, min_precision, random_state)
    y = _labels(is_fraud, len(frame))
    columns = _columns(frame)
    n_fraud = int(np.count_nonzero(y))
    if n_fraud == 0 or n_fraud == len(y) or not columns:
        return []
    data = _Data(frame, y, columns)
    support = max(MIN_SUPPORT, math.ceil(SUPPORT_SHARE * n_fraud))

    # The tree's rows: every fraud, a seeded sample of the legitimate, weighted back to the period.
    rng = np.random.default_rng(random_state)
    legit = np.flatnonzero(~y)
    if len(legit) > LEGIT_SAMPLE:
        legit = np.sort(rng.choice(legit, LEGIT_SAMPLE, replace=False))
    fraud_rows = np.flatnonzero(y)
    rows = np.concatenate([fraud_rows, legit])
    X = np.column_stack([np.clip(data.values[c][rows], -FIT_LIMIT, FIT_LIMIT) for c in columns]).astype(np.float32)
    target = np.concatenate([np.ones(len(fraud_rows), bool), np.zeros(len(legit), bool)])
    # The legitimate sample stands for all the period's legitimate rows; fraud weighs at least FRAUD_WEIGHT.
    fraud_share = max(FRAUD_WEIGHT, n_fraud / len(y))
    weight = np.where(target, fraud_share / len(fraud_rows), (1 - fraud_share) / len(legit))

    pool: dict[str, SuggestedRule] = {}
    masks: dict[str, np.ndarray] = {}
    seen: set[tuple[Term, ...]] = set()
    in_play = np.ones(len(target), dtype=bool)  # tree rows: the legitimate, and fraud no acceptable rule catches yet
    chosen: list[SuggestedRule] = []
    for round_ in range(max_rules + EXTRA_ROUNDS):
        fraud_left = int(np.count_nonzero(target & in_play))
        if fraud_left < support:
            break
        w = np.where(target[in_play], fraud_share / fraud_left, weight[in_play])
        tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=support, random_state=random_state + round_)
        tree.fit(X[in_play], target[in_play], sample_weight=w)
        found = [rule for rule in (_measured(data, path, seen, support, min_precision)
                                   for path in _paths(tree, columns)) if rule is not None and rule[0].condition not in pool]
        if not found:
            break
        caught = np.zeros(len(y), dtype=bool)
        for rule, mask in found:
            pool[rule.condition], masks[rule.condition] = rule, mask
            caught |= mask
        chosen = _select(pool, masks, y, max_rules, support, min_precision)
        if len(chosen) >= max_rules:
            break
        # Sequential covering: the next tree looks for the fraud no acceptable rule catches yet.
        in_play &= ~(target & caught[rows])
    return chosen


def _measured(data: _Data, path: tuple[Term, ...], seen: set[tuple[Term, ...]], support: int,
              min_precision: float) -> tuple[SuggestedRule, np.ndarray] | None:
    """A tree path as a readable rule with its training figures and matches, or None if it
    was seen before or falls short of `support` fraud rows or `min_precision`."""
    terms = _simplify(path)
    if not terms or terms in seen:
        return None
    seen.add(terms)
    fraud, legitimate = data.counts(data.mask(terms))
    # Rounding moves at most 1% of the matches, so a rule this far below the bar cannot reach it.
    if fraud < support or fraud < (min_precision - 2 * ROUNDING_TOLERANCE) * (fraud + legitimate):
        return None
    terms = data.readable(terms)
    mask = data.mask(terms)
    fraud, legitimate = data.counts(mask)
    if fraud < support or fraud < min_precision * (fraud + legitimate):
        return None
    return SuggestedRule(render(terms), fraud, legitimate, fraud / (fraud + legitimate), terms), mask


def _select(pool: dict[str, SuggestedRule], masks: dict[str, np.ndarray], y: np.ndarray, max_rules: int,
            support: int, min_precision: float) -> list[SuggestedRule]:
    """The best rules, greedily: by score, then precision, fewer terms, text (a total order, so
    the choice is deterministic). A rule is kept only if what it adds to the kept ones is worth
    a rule of its own: at least `support` fraud rows they miss, at `min_precision` or better among
    the rows they do not already match. That drops duplicates, subsets of a better rule, and a
    looser copy of a kept rule that buys a little more fraud with many more false alarms."""
    ranked = sorted(pool.values(), key=lambda r: (-r.score, -r.precision, len(r.terms), r.condition))
    kept: list[SuggestedRule] = []
    covered = np.zeros(len(y), dtype=bool)
    for rule in ranked:
        new = masks[rule.condition] & ~covered
        fraud = int(np.count_nonzero(new & y))
        if fraud < support or fraud < min_precision * int(np.count_nonzero(new)):
            continue
        kept.append(rule)
        covered |= masks[rule.condition]
        if len(kept) == max_rules:
            break
    return kept
