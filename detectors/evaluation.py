"""How good a run's scores are, wherever labels exist.

Labels are the dataset's ground-truth column and/or analysts' labels; an analyst's latest
label wins over the ground truth ("unsure" counts as unlabelled). Metrics:
precision / recall / F1 at the threshold, ROC AUC, average precision, precision@k, two card
precisions@k (per day, the share of compromised cards among the k cards with the highest score,
averaged over days): the simple one ranks every card each day; the fraud-detection handbook's
(`card_precision_at_k_handbook`) leaves out cards already known to be compromised, as an
investigator would, so it is comparable with published figures. Recall per fraud scenario, the
confusion matrix, and PR / ROC curves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import auc

from data.datasets import Dataset
from data.db import PERIOD_SQL


def _labelled_sql(dataset: Dataset, columns: str, where: str = "TRUE") -> str:
    """`labelled_frame`'s query with other columns of `j`: tx_row, score, y (1, 0 or NULL), ts,
    scenario, card. Parameters $dataset, $run, $start, $end."""
    truth = "CAST(t.is_fraud AS DOUBLE)" if dataset.has_role("label") else "CAST(NULL AS DOUBLE)"
    scenario = "t.fraud_scenario" if dataset.has_role("fraud_scenario") else "CAST(NULL AS VARCHAR)"
    card = "t.customer_id" if dataset.has_role("customer_id") else "CAST(NULL AS VARCHAR)"
    return f"""
        WITH latest AS (
            SELECT transaction_id, label FROM current_labels WHERE dataset_id = $dataset
        ), j AS (
            SELECT s.tx_row, s.score,
                   CASE l.label WHEN 'fraud' THEN 1.0 WHEN 'legitimate' THEN 0.0 WHEN 'unsure' THEN NULL ELSE {truth} END AS y,
                   t.ts, {scenario} AS scenario, {card} AS card
            FROM scores s JOIN {dataset.table} t USING (tx_row) LEFT JOIN latest l USING (transaction_id)
            WHERE s.run_id = $run AND {PERIOD_SQL}
        )
        SELECT {columns} FROM j WHERE {where}
        """


def labelled_frame(
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    run_id: int,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Per transaction of the run: score, label (1, 0 or NaN), scenario, card and day."""
    return conn.execute(
        _labelled_sql(dataset, "j.tx_row, j.score, j.y, j.scenario, j.card, CAST(j.ts AS DATE) AS day"),
        {"dataset": dataset.id, "run": int(run_id), "start": start, "end": end},
    ).df()


@dataclass(frozen=True, eq=False)  # arrays: no field-wise == or hash
class ThresholdCounts:
    """A period's scores sorted per class, so the metrics at any threshold are a few binary
    searches (what a slider needs at 10M rows, where masking every row per move takes seconds).
    `metrics` equals `threshold_metrics` on the period's `labelled_frame`."""

    fraud: np.ndarray  # sorted scores of rows labelled fraud (NaN scores left out, never alerts)
    legit: np.ndarray
    fraud_rows: int  # NaN scores included
    legit_rows: int
    every: np.ndarray  # sorted scores of every row of the period
    scenarios: dict[str, tuple[np.ndarray, int]]  # per scenario: its fraud rows' sorted scores, and their number

    def metrics(self, threshold: float) -> dict[str, Any]:
        def at_or_above(scores: np.ndarray) -> int:
            return int(len(scores) - np.searchsorted(scores, threshold, side="left"))

        tp, fp = at_or_above(self.fraud), at_or_above(self.legit)
        by_scenario = {name: {"fraud": rows, "caught": at_or_above(scores), "recall": at_or_above(scores) / rows}
                       for name, (scores, rows) in self.scenarios.items()}
        return _threshold_result(at_or_above(self.every), threshold, tp, fp, self.fraud_rows - tp,
                                 self.legit_rows - fp, by_scenario)


def threshold_counts(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, start: datetime | None = None,
                     end: datetime | None = None) -> ThresholdCounts:
    """`ThresholdCounts` of a run's period, read as two numeric columns and the fraud rows' scenarios."""
    params = {"dataset": dataset.id, "run": int(run_id), "start": start, "end": end}
    columns = conn.execute(_labelled_sql(dataset, "j.score, j.y"), params).fetchnumpy()
    score, y = (np.ma.filled(np.ma.asarray(columns[c], dtype=np.float64), np.nan) for c in ("score", "y"))  # NULL: NaN
    fraud, legit = y == 1, y == 0

    def ordered(values: np.ndarray) -> np.ndarray:
        kept = np.sort(values[~np.isnan(values)])
        kept.setflags(write=False)
        return kept

    scenarios: dict[str, tuple[np.ndarray, int]] = {}
    if dataset.has_role("fraud_scenario"):
        rows = conn.execute(_labelled_sql(dataset, "j.scenario, list(j.score)", "j.y = 1 AND j.scenario IS NOT NULL")
                            + " GROUP BY 1 ORDER BY 1", params).fetchall()
        scenarios = {str(name): (ordered(np.asarray(scores, dtype=np.float64)), len(scores)) for name, scores in rows}
    return ThresholdCounts(ordered(score[fraud]), ordered(score[legit]), int(fraud.sum()), int(legit.sum()),
                           ordered(score), scenarios)


def precision_at_k(y: np.ndarray, scores: np.ndarray, k: int) -> float | None:
    """Share of fraud among the k highest-scored labelled rows."""
    if len(y) == 0:
        return None
    top = np.argsort(-scores, kind="stable")[: min(k, len(y))]
    return float(y[top].mean())


def card_precision_at_k(frame: pd.DataFrame, k: int) -> float | None:
    """Per day, the share of compromised cards among the k cards with the highest score; mean over days.

    A card is compromised on a day if any of its transactions that day is fraud; its score
    that day is its highest transaction score.
    """
    data = frame.dropna(subset=["card", "y"])
    if data.empty:
        return None
    per_card = data.groupby(["day", "card"], sort=False).agg(score=("score", "max"), fraud=("y", "max")).reset_index()
    per_card = per_card.sort_values(["day", "score"], ascending=[True, False], kind="stable")
    top = per_card.groupby("day", sort=False).head(k)
    # A day with fewer than k cards still divides by k, as the handbook does.
    return float((top.groupby("day")["fraud"].sum() / k).mean())


def card_precision_at_k_handbook(frame: pd.DataFrame, k: int, known_compromised: Any = ()) -> float | None:
    """The fraud-detection handbook's card precision@k, exactly: for each day, each card's highest
    score that day; the k highest-scored cards; the share of them compromised (a fraud that day),
    dividing by k even on a day with fewer cards. A card already known to be compromised, before
    the period (`known_compromised`, see `known_compromised_cards`) or detected in the top k on an
    earlier day, leaves the ranking. The mean over days; None without labelled cards."""
    data = frame.dropna(subset=["card", "y"])
    if data.empty:
        return None
    # Cards as integer codes in sorted order, so the groupby and the "already known" test are on
    # integers (the string version spent 3 s on 1.8M rows in `isin`); same ranking, same ties.
    codes, cards = pd.factorize(data["card"], sort=True)
    per_card = (pd.DataFrame({"day": data["day"].to_numpy(), "card": codes, "score": data["score"].to_numpy(),
                              "fraud": data["y"].to_numpy()})
                .groupby(["day", "card"], sort=True).agg(score=("score", "max"), fraud=("fraud", "max")).reset_index())
    known = np.zeros(len(cards), dtype=bool)
    known_compromised = list(set(known_compromised))  # any iterable of card ids
    if known_compromised:
        positions = pd.Index(cards).get_indexer(known_compromised)
        known[positions[positions >= 0]] = True
    # Within a day, highest score first; ties in card order (lexsort is stable), as before.
    order = np.lexsort((-per_card["score"].to_numpy(), per_card["day"].to_numpy()))
    day = per_card["day"].to_numpy()[order]
    card = per_card["card"].to_numpy()[order]
    fraud = per_card["fraud"].to_numpy()[order] == 1
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    precisions = []
    for start, stop in zip(starts, np.r_[starts[1:], len(day)], strict=True):
        unknown = np.flatnonzero(~known[card[start:stop]])[:k] + start
        detected = card[unknown[fraud[unknown]]]
        precisions.append(len(detected) / k)
        known[detected] = True
    return float(np.mean(precisions))


def known_compromised_cards(conn: duckdb.DuckDBPyConnection, dataset: Dataset, before: datetime | None) -> list[str]:
    """Cards an analyst has confirmed compromised (a current 'fraud' label) on a transaction before
    `before`: what an investigator already knows when the period starts, as in the handbook's
    protocol, where the training week's frauds are known. The dataset's label column does not
    count: it is the ground truth of the whole history, not what a team had confirmed."""
    if before is None or not dataset.has_role("customer_id"):
        return []
    rows = conn.execute(
        f"""SELECT DISTINCT t.customer_id FROM {dataset.table} t
            JOIN (SELECT transaction_id FROM current_labels WHERE dataset_id = $dataset AND label = 'fraud') l
              USING (transaction_id)
            WHERE t.ts < $before AND t.customer_id IS NOT NULL""",
        {"dataset": dataset.id, "before": before}).fetchall()
    return [r[0] for r in rows]


def ranking_metrics(frame: pd.DataFrame, k: int = 100, known_compromised: Any = ()) -> dict[str, Any]:
    """Metrics that do not depend on the threshold: computed once per run and labels."""
    return ranking_metrics_and_curves(frame, k, known_compromised)[0]


def ranking_metrics_and_curves(frame: pd.DataFrame, k: int = 100, known_compromised: Any = (),
                               max_points: int = 300) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """`ranking_metrics` and `curves` from one precision-recall and one ROC curve: each sorts
    every labelled score (seconds at 10M rows), where `average_precision_score`,
    `roc_auc_score` and the two curves would sort four times. The same numbers: AP and AUC are
    computed from the curves exactly as scikit-learn computes them."""
    labelled = frame[frame["y"].notna()]
    y = labelled["y"].to_numpy(dtype=int)
    scores = labelled["score"].to_numpy(dtype=float)
    both_classes = 0 < y.sum() < len(y)
    lines: dict[str, pd.DataFrame] = {}
    roc_auc = average_precision = None
    if both_classes:
        average_precision, roc_auc, lines = _curves(y, scores, max_points)
    cards = frame["card"].notna().any()
    return {
        "rows": int(len(frame)),
        "labelled": int(len(y)),
        "fraud": int(y.sum()),
        "roc_auc": roc_auc,
        "average_precision": average_precision,
        "k": k,
        "precision_at_k": precision_at_k(y, scores, k),
        "card_precision_at_k": card_precision_at_k(frame, k) if cards else None,
        "card_precision_at_k_handbook": card_precision_at_k_handbook(frame, k, known_compromised) if cards else None,
    }, lines


def _curves(y: np.ndarray, scores: np.ndarray, max_points: int) -> tuple[float, float, dict[str, pd.DataFrame]]:
    """Average precision, ROC AUC and the thinned PR and ROC curves of labelled rows with both
    classes, from one sort (`_ranked_counts`); the curves are built as `precision_recall_curve`
    and `roc_curve` (with its dropped collinear points) build them, and AP and AUC are computed
    from them as `average_precision_score` and `roc_auc_score` do (a test compares all four)."""
    fps, tps = _ranked_counts(y, scores)
    ps = tps + fps
    precision = np.r_[np.divide(tps, ps, out=np.zeros_like(tps), where=ps != 0)[::-1], 1.0]
    recall = np.r_[(tps / tps[-1])[::-1], 0.0]
    if len(fps) > 2:
        corners = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps = fps[corners], tps[corners]
    fpr, tpr = np.r_[0.0, fps] / fps[-1], np.r_[0.0, tps] / tps[-1]
    average_precision = float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))  # as average_precision_score
    roc_auc = float(auc(fpr, tpr))  # as roc_auc_score
    return average_precision, roc_auc, {"pr": _thin(recall, precision, ("recall", "precision"), max_points),
                                        "roc": _thin(fpr, tpr, ("fpr", "tpr"), max_points)}


def _ranked_counts(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positives above each distinct score, highest first: scikit-learn's
    `confusion_matrix_at_thresholds`, without its validation passes (type_of_target sorts the
    labels once more) — with the two curves, 1.6 s of a fit's 16 s at 1.8M labelled rows."""
    # Any sort will do (scikit-learn's is stable): only the last row of each run of tied scores is
    # read, and the count of positives up to it is the same in any order within the run.
    order = np.argsort(scores)[::-1]
    ranked = scores[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]
    tps = np.cumsum(y[order], dtype=np.float64)[ends]
    return 1 + ends.astype(np.float64) - tps, tps


def _thin(a: np.ndarray, b: np.ndarray, names: tuple[str, str], max_points: int) -> pd.DataFrame:
    idx = np.unique(np.linspace(0, len(a) - 1, min(max_points, len(a))).round().astype(int))
    return pd.DataFrame({names[0]: a[idx], names[1]: b[idx]})


def threshold_metrics(frame: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """Metrics at a threshold: vectorized counts, fast enough to follow a slider."""
    scores_all = frame["score"].to_numpy(dtype=float)
    y_all = frame["y"].to_numpy(dtype=float)
    known = ~np.isnan(y_all)
    alert = scores_all >= threshold
    fraud = known & (y_all == 1)
    legit = known & (y_all == 0)
    tp, fp = int((alert & fraud).sum()), int((alert & legit).sum())
    fn, tn = int((~alert & fraud).sum()), int((~alert & legit).sum())
    by_scenario: dict[str, Any] = {}
    scenario = frame["scenario"].to_numpy(dtype=object)
    for name in sorted({s for s in scenario[fraud] if s is not None and s == s}):
        rows = fraud & (scenario == name)
        caught = int((rows & alert).sum())
        by_scenario[str(name)] = {"fraud": int(rows.sum()), "caught": caught, "recall": caught / int(rows.sum())}
    return _threshold_result(int(alert.sum()), threshold, tp, fp, fn, tn, by_scenario)


def _threshold_result(alerts: int, threshold: float, tp: int, fp: int, fn: int, tn: int,
                      by_scenario: dict[str, Any]) -> dict[str, Any]:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "alerts": alerts,
        "threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "recall_by_scenario": by_scenario,
    }


def evaluate(frame: pd.DataFrame, threshold: float, k: int = 100, known_compromised: Any = ()) -> dict[str, Any]:
    """All metrics for `frame` (from `labelled_frame`) at `threshold`."""
    return {**ranking_metrics(frame, k, known_compromised), **threshold_metrics(frame, threshold)}


def curves(frame: pd.DataFrame, max_points: int = 300) -> dict[str, pd.DataFrame]:
    """PR and ROC curves of the labelled rows, thinned to at most `max_points` points each."""
    labelled = frame[frame["y"].notna()]
    y, scores = labelled["y"].to_numpy(dtype=int), labelled["score"].to_numpy(dtype=float)
    if not 0 < y.sum() < len(y):
        return {}
    return _curves(y, scores, max_points)[2]
