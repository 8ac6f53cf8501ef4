"""A run's threshold-free figures on its evaluation period — AUC, average precision, precision and
card precision at k, the PR and ROC curves — stored per run (`run_figures`).

They cost about 0.7 s at 1M rows (the handbook's card precision walks every day's cards), and the
Detect page shows them on opening. So they are computed when a run is saved and kept with a stamp
of what they depend on: the run's feature version (its scores), the analysts' labels and the
dataset's rows (live scoring adds rows after training). A page reads them; when the stamp no
longer matches, they are computed again and stored. Derived values, like explanations: written by
one statement, outside any action.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import duckdb
import pandas as pd

from data.datasets import Dataset, labels_version
from data.db import fetch_records
from detectors.evaluation import known_compromised_cards, labelled_frame, ranking_metrics_and_curves
from detectors.runs import Run

DEFAULT_K = 100  # what the Detect page shows
Figures = tuple[dict[str, Any], dict[str, pd.DataFrame]]


def stamp(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Run) -> str:
    """What the figures depend on, as stored beside them."""
    return json.dumps([run.feature_version, list(labels_version(conn, dataset.id)), dataset.row_count], default=str)


def compute(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Run, k: int = DEFAULT_K,
            frame: pd.DataFrame | None = None) -> Figures:
    """The figures, computed from the stored scores and labels (`frame`: the run's evaluation
    frame, when the caller has it)."""
    if frame is None:
        frame = labelled_frame(conn, dataset, run.id, run.train_until)
    return ranking_metrics_and_curves(frame, k, known_compromised_cards(conn, dataset, run.train_until))


def _encode(figures: Figures) -> str:
    ranking, lines = figures
    return json.dumps({"ranking": ranking,
                       "curves": {name: {c: line[c].tolist() for c in line.columns} for name, line in lines.items()}})


def _decode(text: str) -> Figures:
    found = json.loads(text)
    return found["ranking"], {name: pd.DataFrame(line) for name, line in found["curves"].items()}


def store(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Run, k: int = DEFAULT_K,
          frame: pd.DataFrame | None = None) -> Figures:
    """Compute the figures and keep them (inside the caller's transaction, if any)."""
    started = time.perf_counter()
    text = _encode(compute(conn, dataset, run, k, frame))
    conn.execute("INSERT OR REPLACE INTO run_figures (run_id, k, stamp, figures, seconds, created_at) "
                 "VALUES (?, ?, ?, ?, ?, current_timestamp::TIMESTAMP)",
                 [run.id, int(k), stamp(conn, dataset, run), text, time.perf_counter() - started])
    return _decode(text)  # as a later read returns them


def figures(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Run, k: int = DEFAULT_K,
            frame: Callable[[], pd.DataFrame] | None = None) -> Figures:
    """The stored figures if they are current, else computed now and stored."""
    found = fetch_records(conn, "SELECT stamp, figures FROM run_figures WHERE run_id = ? AND k = ?", [run.id, int(k)])
    if found and found[0]["stamp"] == stamp(conn, dataset, run):
        return _decode(found[0]["figures"])
    return store(conn, dataset, run, k, frame() if frame is not None else None)
