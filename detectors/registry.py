"""The model registry: every detector run and supervised version of a dataset, side by side."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from data.datasets import Dataset
from detectors.runs import Run, active_run, list_runs

METRICS = {"average_precision": "Average precision", "precision_at_k": "Precision@100", "roc_auc": "ROC AUC"}


def _promotions(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> dict[int, tuple[str, datetime, str]]:
    """Each run's latest promotion or rollback: (who, when, action)."""
    rows = conn.execute(
        "SELECT run_id, actor, created_at, action FROM promotions WHERE dataset_id = ? AND action <> 'fit' "
        "QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY created_at DESC, rowid DESC) = 1",
        [dataset.id]).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def model_registry(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> pd.DataFrame:
    """One row per run, newest first: what it is, what it learned from, how it measured, who
    trained and promoted it. Metrics are as measured when it was made: a detector run on the
    period after its training, a supervised version on its newest labels (beside its detector)."""
    active = active_run(conn, dataset)
    promoted = _promotions(conn, dataset)
    rows = []
    for run in reversed(list_runs(conn, dataset)):
        counts = run.label_counts or {}
        baseline = run.metrics.get("baseline", {})
        who = promoted.get(run.id)
        rows.append({
            "version": run.id, "active": active is not None and active.id == run.id, "kind": run.kind,
            "model": run.detector, "built_on": run.base_run_id, "created_at": run.created_at, "created_by": run.created_by,
            "train_from": run.train_from, "train_until": run.train_until, "rows": run.fit_rows,
            "fraud_labels": counts.get("fraud"), "legitimate_labels": counts.get("legitimate"),
            "analyst_labels": (counts.get("analyst_fraud", 0) + counts.get("analyst_legitimate", 0)) if counts else None,
            **{m: run.metrics.get(m) for m in METRICS},
            "detector_average_precision": baseline.get("average_precision"),
            "promoted_by": who[0] if who else None, "promoted_at": who[1] if who else None,
            "last_action": who[2] if who else None,
            "params": run.params, "features": run.features.get("numeric", []) + run.features.get("categorical", []),
        })
    return pd.DataFrame(rows)


def importance_of(run: Run) -> pd.DataFrame | None:
    """A supervised version's permutation importance (drop in average precision when a feature is
    shuffled, on its validation labels), largest first; None for detector runs."""
    stored = run.metrics.get("importance")
    if not stored:
        return None
    frame = pd.DataFrame({"feature": list(stored), "importance": list(stored.values())})
    return frame.sort_values("importance", ascending=False, ignore_index=True)


def validation_table(run: Run) -> pd.DataFrame | None:
    """A supervised version beside its detector run and the version active when it was trained,
    on the same validation labels (its newest labelled period); None for detector runs."""
    if run.kind != "supervised" or "baseline" not in run.metrics:
        return None
    columns = {f"#{run.id} {run.detector} (new)": run.metrics,
               f"#{run.metrics['baseline']['run']} detector": run.metrics["baseline"]}
    beside = run.metrics.get("active")
    if beside:
        note = " (trained on some of these labels)" if beside.get("saw_these_labels") else ""
        columns[f"#{beside['run']} {beside['detector']}, active then{note}"] = beside
    return pd.DataFrame({name: {label: m.get(key) for key, label in {**METRICS, "labelled": "Labelled rows",
                                                                        "fraud": "Fraud"}.items()}
                         for name, m in columns.items()})
