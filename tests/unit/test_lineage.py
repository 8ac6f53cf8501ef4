"""Lineage: a feature set's version covers its definitions and the labels it read; runs and stored
explanations carry the version they saw, so an explanation of features that have since been
recomputed is recomputed, and a score from older features is marked, never shown as current."""

from __future__ import annotations

import pytest

from application import cases as app_cases
from application import datasets as app_datasets
from application import labels as app_labels
from application import runs as app_runs
from application.queue import queue_page
from data.features import feature_version, load_feature_set
from detectors.explain import explainer_for_run
from detectors.runs import default_split, get_run
from tests.conftest import as_user


@pytest.fixture
def explained(conn, small_dataset):
    """A run, and the explanation of its top alert, stored."""
    ctx = as_user(conn, "ana")
    run = app_runs.fit(ctx, small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    top = queue_page(ctx, small_dataset, page_size=1).rows["transaction_id"].iloc[0]
    case = app_cases.open_case(ctx, small_dataset, top)
    first = app_cases.explanation(ctx, case, lambda: explainer_for_run(conn, small_dataset, run))
    return ctx, run, top, first


def test_the_version_covers_definitions_parameters_and_labels(conn, small_dataset):
    computed = app_datasets.compute_features(as_user(conn), small_dataset)
    assert computed.version and computed.labels_snapshot  # the merchant fraud rate reads labels
    again = app_datasets.compute_features(as_user(conn), small_dataset)
    assert again.version == computed.version  # nothing changed: the same version
    other_delay = app_datasets.compute_features(as_user(conn), small_dataset, label_delay_days=3)
    assert other_delay.version != computed.version
    assert feature_version([], {"label_delay_days": 7}, "a") != feature_version([], {"label_delay_days": 7}, "b")


def test_a_label_change_marks_then_recomputes_a_stored_explanation(conn, small_dataset, explained):
    ctx, run, top, first = explained
    assert not first["cached"] and first["lineage"] == {
        "features_version": run.feature_version, "score_is_current": True, "features_behind_labels": False}
    case = app_cases.open_case(ctx, small_dataset, top)
    assert app_cases.explanation(ctx, case, lambda: pytest.fail("rebuilt"))["cached"]

    # A label changes: the features no longer see every label, and the explanation says so.
    app_labels.label(ctx, small_dataset, [top], "fraud")
    marked = app_cases.explanation(ctx, case, lambda: pytest.fail("rebuilt"))
    assert marked["cached"] and marked["lineage"]["features_behind_labels"]

    # The features are recomputed from the new labels: the stored explanation explained the old
    # feature row, so it is recomputed (not shown as current), and the run's score is marked older.
    recomputed = app_datasets.compute_features(ctx, small_dataset)
    assert recomputed.version != run.feature_version
    built = []
    fresh = app_cases.explanation(ctx, case, lambda: built.append(1) or explainer_for_run(conn, small_dataset, run))
    assert built == [1] and not fresh["cached"] and fresh["recomputed"]
    assert fresh["lineage"] == {"features_version": recomputed.version, "score_is_current": False,
                                "features_behind_labels": False}
    stored = conn.execute("SELECT feature_version FROM explanations WHERE run_id = ?", [run.id]).fetchall()
    assert stored == [(recomputed.version,)]

    # Scoring again with the run aligns its scores with the current features.
    app_runs.rescore(ctx, small_dataset, run.id)
    assert get_run(conn, run.id).feature_version == load_feature_set(conn, small_dataset).version
    assert app_cases.explanation(ctx, app_cases.open_case(ctx, small_dataset, top),
                                 lambda: pytest.fail("rebuilt"))["lineage"]["score_is_current"]
