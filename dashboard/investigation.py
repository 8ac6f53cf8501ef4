"""What the investigation pages share: the run they read, feature descriptions, undo."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import streamlit as st

from dashboard.cached import run_threshold
from dashboard.state import flash
from data.cases import analysts, last_action, undo_labels
from data.datasets import Dataset
from data.errors import DataError
from data.features import CATALOGUE
from detectors.runs import Run, active_run


def require_run(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> tuple[Run, float]:
    """The dataset's active run and its threshold; stops the page with a pointer if there is none."""
    run = active_run(conn, dataset)
    if run is None:
        st.info("No detector has been run on this dataset yet, so there are no alerts. "
                "Fit one on the Detect & tune page.")
        st.page_link("pages/detect.py", label="Go to Detect & tune", icon=":material/tune:")
        st.stop()
    return run, run_threshold(run.id, run.contamination)


def feature_descriptions() -> dict[str, tuple[str, str]]:
    """Feature name -> (description, unit), for chart labels."""
    return {f.name: (f.description, f.unit) for f in CATALOGUE}


def undo_box(conn: duckdb.DuckDBPyConnection, dataset: Dataset, analyst: str, key: str) -> None:
    """'Undo' for the analyst's latest labelling action that is still in effect."""
    if not analyst:
        return
    action = last_action(conn, dataset, analyst)
    if action is None:
        return
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.caption(f"Your last action: {action['count']:,} labelled **{action['label']}** at {action['at']:%H:%M:%S}.")
    if right.button("Undo", key=key, icon=":material/undo:", help="Take back your last labelling action"):
        try:
            count = undo_labels(conn, action["batch_id"], analyst)
        except DataError as exc:
            st.error(str(exc))
        else:
            flash("success", f"Undone: {count:,} label{'s' if count != 1 else ''} taken back (kept in the history).")
            st.rerun()


def act(action: Callable[[], object], success: str) -> None:
    """Run a write an analyst asked for: on bad input show why (nothing was written), else
    confirm at the top of the next run and rerun so every panel shows the change."""
    try:
        action()
    except DataError as exc:
        st.error(str(exc))
    else:
        flash("success", success)
        st.rerun()


def assignee_choices(conn: duckdb.DuckDBPyConnection, dataset: Dataset, analyst: str) -> list[str]:
    """Everyone who has worked on the dataset, and the current analyst."""
    return sorted(set(analysts(conn, dataset)) | ({analyst} if analyst else set()))
