"""Suggested rules: drawn from an earlier period's fraud, they still catch a planted scenario
later; their text is what `matches` and DuckDB evaluate; missing values never match a bound."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import pandas as pd
import pytest

from application import datasets as app_datasets
from data.db import connect
from data.errors import InvalidInput
from data.features import feature_frame
from data.synthetic import SCENARIOS, SyntheticConfig
from detectors.rule_suggestions import SuggestedRule, Term, matches, render, suggest_rules
from tests.conftest import as_user

LABEL_COLUMNS = ("tx_row", "ts", "is_fraud", "fraud_scenario")
TERM = re.compile(r"([a-z_][a-z0-9_]*) (<=|>) (-?\d+(?:\.\d+)?)\Z")


@pytest.fixture(scope="module")
def periods(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """40,000 generated transactions over 60 days (1% fraud) with their features and numeric
    columns, cut in time: the first 36 days to suggest from, the last 24 to check on."""
    conn = connect(tmp_path_factory.mktemp("suggest") / "s.duckdb")
    created = app_datasets.generate(as_user(conn), "s", SyntheticConfig(rows=40_000, seed=11, fraud_rate=0.01, days=60))
    rows = conn.execute(f"SELECT tx_row, ts, is_fraud, CAST(fraud_scenario AS VARCHAR) AS fraud_scenario, "
                        f"customer_age, account_age_days, lat, lon FROM {created.dataset.table} ORDER BY tx_row").df()
    both = rows.merge(feature_frame(conn, created.features), on="tx_row", validate="one_to_one")
    conn.close()
    cut = both["ts"].min().normalize() + pd.Timedelta(days=36)
    return both[both["ts"] < cut].reset_index(drop=True), both[both["ts"] >= cut].reset_index(drop=True)


@pytest.fixture(scope="module")
def suggested(periods) -> list[SuggestedRule]:
    earlier, _ = periods
    return suggest_rules(earlier.drop(columns=list(LABEL_COLUMNS)), earlier["is_fraud"].to_numpy())


def _sql_count(frame: pd.DataFrame, condition: str, what: str = "count(*)") -> int:
    """`SELECT <what> FROM f WHERE <condition>` over the frame, in a fresh in-memory DuckDB."""
    with duckdb.connect() as db:
        db.register("f", frame)
        return int(db.execute(f"SELECT {what} FROM f WHERE {condition}").fetchone()[0] or 0)


def test_a_rule_from_the_earlier_period_catches_a_planted_scenario_later(periods, suggested):
    _, later = periods
    assert suggested, "no rule suggested"
    recovered = []
    for rule in suggested:
        # Measured independently of the module: the condition's text, run by DuckDB on the later rows.
        with duckdb.connect() as db:
            db.register("later", later)
            hits = db.execute(f"SELECT is_fraud, fraud_scenario FROM later WHERE {rule.condition}").df()
        if len(hits) == 0 or hits["is_fraud"].mean() <= 0.5:
            continue
        scenario = hits["fraud_scenario"].value_counts().idxmax()
        planted = int((later["fraud_scenario"] == scenario).sum())
        caught = int((hits["fraud_scenario"] == scenario).sum())
        if caught >= 10 and caught >= 0.5 * planted:
            recovered.append((rule.condition, scenario, caught, planted, hits["is_fraud"].mean()))
    assert recovered, [(r.condition, r.precision) for r in suggested]
    assert {scenario for _, scenario, *_ in recovered} <= set(SCENARIOS)


def test_suggestions_are_short_readable_and_measured_on_the_training_rows(periods, suggested):
    earlier, _ = periods
    frame = earlier.drop(columns=list(LABEL_COLUMNS))
    y = earlier["is_fraud"].to_numpy()
    assert 1 <= len(suggested) <= 5
    for rule in suggested:
        parts = rule.condition.split(" AND ")
        assert 1 <= len(parts) <= 3 * 2  # at most max_depth columns, each bounded at most twice
        for part in parts:
            column, _, value = TERM.match(part).groups()
            assert column in frame.columns and column not in LABEL_COLUMNS
            assert len(value.replace("-", "").replace(".", "").strip("0")) <= 6  # rounded, not 812.4999999
        assert len(rule.columns) <= 3 and rule.condition == render(rule.terms)
        assert len({(t.column, t.op) for t in rule.terms}) == len(rule.terms)  # bounds merged per column
        hit = matches(frame, rule)
        assert rule.fraud == int((hit & y).sum()) and rule.legitimate == int((hit & ~y).sum())
        assert rule.precision == pytest.approx(rule.fraud / (rule.fraud + rule.legitimate)) and rule.precision >= 0.5
    scores = [rule.fraud * rule.precision for rule in suggested]
    assert scores == sorted(scores, reverse=True)
    assert len({rule.condition for rule in suggested}) == len(suggested)
    masks = [matches(frame, rule) for rule in suggested]
    for i, later_mask in enumerate(masks):
        for better in masks[:i]:
            assert (later_mask & ~better).any()  # no rule's matches are a subset of a better one's


def test_matches_agrees_with_duckdb_on_the_condition_text(periods, suggested):
    earlier, later = periods
    for frame in (earlier, later):
        for rule in suggested:
            assert int(matches(frame, rule).sum()) == _sql_count(frame, rule.condition)


def test_the_same_seed_gives_the_same_suggestions(periods, suggested):
    earlier, _ = periods
    again = suggest_rules(earlier.drop(columns=list(LABEL_COLUMNS)), earlier["is_fraud"].to_numpy(), random_state=0)
    assert again == suggested


def test_non_numeric_columns_are_ignored_and_bools_become_integer_bounds():
    rng = np.random.default_rng(0)
    n = 6_000
    y = rng.random(n) < 0.03
    frame = pd.DataFrame({
        "flag": y | (rng.random(n) < 0.002),  # a bool that nearly is the label
        "city": np.where(y, "Lima", "Cusco"),  # text: ignored, however telling
        "when": pd.Timestamp("2026-08-01") + pd.to_timedelta(np.arange(n), unit="min"),
        "noise": rng.normal(size=n),
    })
    rules = suggest_rules(frame, y)
    assert rules and rules[0].condition == "flag > 0"
    assert all(set(rule.columns) <= {"flag", "noise"} for rule in rules)
    assert _sql_count(frame, rules[0].condition) == int(matches(frame, rules[0]).sum())


def test_a_bound_never_matches_a_missing_value():
    """NaN rows that the tree may route into a fraud leaf are not counted for the rule: in SQL
    `x > 10` is not true where x is NULL, and neither is it in `matches`."""
    rng = np.random.default_rng(1)
    legit, high, missing = 5_000, 200, 300
    x = np.concatenate([rng.uniform(0, 10, legit), rng.uniform(11, 20, high), np.full(missing, np.nan)])
    y = np.concatenate([np.zeros(legit, bool), np.ones(high + missing, bool)])
    frame = pd.DataFrame({"x": x, "n": pd.array(np.where(np.isnan(x), None, np.round(x)), dtype="Int64")})
    rules = suggest_rules(frame, y)
    assert rules
    for rule in rules:
        hit = matches(frame, rule)
        assert not (hit & np.isnan(x)).any()
        assert rule.fraud == int((hit & y).sum()) == _sql_count(frame, rule.condition)
        assert rule.fraud <= high and rule.legitimate == 0
    # Missing values alone tell fraud apart here: no AND of bounds can say "x is missing", so no rule.
    only_missing = pd.DataFrame({"x": np.where(y, np.nan, x)})
    assert suggest_rules(only_missing, y) == []


def test_matches_reads_nullable_and_boolean_columns_as_sql_does():
    frame = pd.DataFrame({
        "a": [1.0, np.nan, 7.0, 3.0, 5.0],
        "b": pd.array([True, None, True, False, True], dtype="boolean"),
        "c": pd.array([1, 2, None, 4, 5], dtype="Int64"),
    })
    terms = (Term("a", ">", 2.5), Term("b", ">", 0), Term("c", "<=", 5))
    rule = SuggestedRule(render(terms), 1, 0, 1.0, terms)
    assert rule.condition == "a > 2.5 AND b > 0 AND c <= 5"
    assert matches(frame, rule).tolist() == [False, False, False, False, True]
    assert _sql_count(frame, rule.condition) == 1
    with pytest.raises(InvalidInput, match="amout"):
        matches(frame, (Term("amout", ">", 1.0),))


def test_names_that_are_not_plain_identifiers_are_quoted():
    terms = (Term("Monto (S/)", ">", 100.0), Term("order", "<=", 0.25))
    rule = SuggestedRule(render(terms), 1, 0, 1.0, terms)
    assert rule.condition == '"Monto (S/)" > 100 AND "order" <= 0.25'
    frame = pd.DataFrame({"Monto (S/)": [50.0, 150.0, 150.0], "order": [0.1, 0.3, 0.2]})
    assert matches(frame, rule).tolist() == [False, False, True] and _sql_count(frame, rule.condition) == 1


def test_nothing_to_learn_gives_no_suggestion_and_bad_arguments_are_named():
    frame = pd.DataFrame({"amount": [10.0, 20.0, 30.0]})
    assert suggest_rules(frame, np.zeros(3, bool)) == []  # no fraud
    assert suggest_rules(frame, np.ones(3, bool)) == []  # no legitimate row
    assert suggest_rules(frame.iloc[:0], np.zeros(0, bool)) == []  # no rows
    assert suggest_rules(pd.DataFrame({"city": ["a", "b", "c"]}), np.array([1, 0, 0])) == []  # no numeric column
    with pytest.raises(InvalidInput, match="one label per row"):
        suggest_rules(frame, np.zeros(2, bool))
    with pytest.raises(InvalidInput, match="unlabelled"):
        suggest_rules(frame, np.array([1.0, np.nan, 0.0]))
    for bad in ({"max_depth": 0}, {"max_depth": 9}, {"max_rules": 0}, {"min_precision": 1.5},
                {"random_state": None}):
        with pytest.raises(InvalidInput) as error:
            suggest_rules(frame, np.array([1, 0, 0]), **bad)
        assert error.value.field == next(iter(bad))
    with pytest.raises(InvalidInput, match="rendering"):
        SuggestedRule("amount > 1", 1, 0, 1.0, (Term("amount", ">", 2.0),))
