"""What the investigation pages share: the run they read, feature descriptions, undo."""

from __future__ import annotations

import streamlit as st

from application import labels
from application.context import Context
from application.runs import ActiveRun, active
from dashboard.actions import act
from dashboard.navigation import page_link
from data.datasets import Dataset
from data.features import CATALOGUE


def require_run(ctx: Context, dataset: Dataset) -> ActiveRun:
    """The dataset's active run and its threshold; stops the page with a pointer if there is none."""
    found = active(ctx, dataset)
    if found is None:
        st.info("No detector has been run on this dataset yet, so there are no alerts. "
                "Fit one on the Detect & tune page.")
        page_link("detect", label="Go to Detect & tune")
        st.stop()
    return found


def feature_descriptions() -> dict[str, tuple[str, str]]:
    """Feature name -> (description, unit), for chart labels."""
    return {f.name: (f.description, f.unit) for f in CATALOGUE}


def undo_box(ctx: Context, dataset: Dataset, key: str) -> None:
    """'Undo' for the analyst's latest labelling action that is still in effect."""
    action = labels.last_action(ctx, dataset)
    if action is None:
        return
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.caption(f"Your last action: {action['count']:,} labelled **{action['label']}** at {action['at']:%H:%M:%S}.")
    if right.button("Undo", key=key, icon=":material/undo:", help="Take back your last labelling action"):
        act(lambda c: labels.undo(c, action["batch_id"]),
            lambda n: f"Undone: {n:,} label{'s' if n != 1 else ''} taken back (kept in the history).")
