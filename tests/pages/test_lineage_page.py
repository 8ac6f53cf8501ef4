"""The case page says when an explanation was recomputed and when a score is from older features."""

from __future__ import annotations

import pytest

from application import cases as app_cases
from application import datasets as app_datasets
from application import labels as app_labels
from application import runs as app_runs
from application.queue import queue_page
from detectors.explain import explainer_for_run
from detectors.runs import default_split
from tests.apptest import app, texts
from tests.conftest import as_user

pytestmark = pytest.mark.usefixtures("server_like_navigation")


def test_the_case_page_shows_a_recomputed_explanation_and_an_older_score(conn, small_dataset):
    ctx = as_user(conn, "ana")
    run = app_runs.fit(ctx, small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    top = queue_page(ctx, small_dataset, page_size=1).rows["transaction_id"].iloc[0]
    app_cases.explanation(ctx, app_cases.open_case(ctx, small_dataset, top), lambda: explainer_for_run(conn, small_dataset, run))
    app_labels.label(ctx, small_dataset, [top], "fraud")
    app_datasets.compute_features(ctx, small_dataset)
    at = app()
    at.query_params["case"] = top
    at.run()
    at.switch_page("pages/case.py").run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "The features were recomputed since this case was last explained" in shown
    assert f"Run #{run.id} scored this transaction on earlier features" in shown
