"""A run's threshold-free figures are stored when it is saved and equal a direct computation from
its scores and labels; when the labels change they are computed again, and again equal it."""

from __future__ import annotations

import json

import pandas as pd

from application import datasets as app_datasets
from application import labels as app_labels
from application import runs as app_runs
from detectors import run_figures
from detectors.evaluation import curves, known_compromised_cards, labelled_frame, ranking_metrics
from detectors.runs import default_split
from tests.conftest import as_user


def _direct(conn, dataset, run, k=run_figures.DEFAULT_K):
    """The figures straight from the stored scores and labels, by a query of their own."""
    frame = labelled_frame(conn, dataset, run.id, run.train_until)
    return ranking_metrics(frame, k, known_compromised_cards(conn, dataset, run.train_until)), curves(frame)


def _assert_same(found, direct):
    (ranking, lines), (want_ranking, want_lines) = found, direct
    assert ranking == want_ranking
    assert set(lines) == set(want_lines) == {"pr", "roc"}
    for name, line in want_lines.items():
        pd.testing.assert_frame_equal(lines[name], line.reset_index(drop=True), check_exact=True)


def test_the_figures_stored_at_fit_equal_a_direct_computation_and_follow_the_labels(conn, small_dataset):
    ctx = as_user(conn, "ana")
    run = app_runs.fit(ctx, small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    (stamp, stored), = conn.execute("SELECT stamp, figures FROM run_figures WHERE run_id = ? AND k = ?",
                                    [run.id, run_figures.DEFAULT_K]).fetchall()
    dataset = ctx.dataset(small_dataset.name)
    assert stamp == run_figures.stamp(conn, dataset, run)
    assert json.loads(stored)["ranking"]["average_precision"] is not None
    found = run_figures.figures(conn, dataset, run, frame=lambda: (_ for _ in ()).throw(AssertionError("recomputed")))
    _assert_same(found, _direct(conn, dataset, run))

    # An analyst confirms a card compromised before the test period: the handbook's card precision
    # leaves that card out, so the stored figures are stale; they are computed again and stored.
    early = conn.execute(f"SELECT transaction_id FROM {dataset.table} WHERE ts < ? AND is_fraud ORDER BY ts LIMIT 3",
                         [run.train_until]).fetchall()
    app_labels.label(ctx, dataset, [r[0] for r in early], "fraud")
    assert run_figures.stamp(conn, dataset, run) != stamp
    again = run_figures.figures(conn, dataset, run)
    _assert_same(again, _direct(conn, dataset, run))
    assert conn.execute("SELECT stamp FROM run_figures WHERE run_id = ?", [run.id]).fetchall()[0][0] == \
        run_figures.stamp(conn, dataset, run)


def test_a_purged_dataset_leaves_no_figures(conn, small_dataset):
    ctx = as_user(conn, "ana")
    run = app_runs.fit(ctx, small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    assert conn.execute("SELECT count(*) FROM run_figures WHERE run_id = ?", [run.id]).fetchall()[0][0] == 1
    app_datasets.delete(ctx, small_dataset.name)
    app_datasets.empty_trash(ctx)
    assert conn.execute("SELECT count(*) FROM run_figures WHERE run_id = ?", [run.id]).fetchall()[0][0] == 0
