"""Live updates on the queue and KPI pages: a fragment polls for transactions scored through the
API every few seconds, says how many new alerts arrived since the page was opened, and (while
'Live updates' is on) refreshes the page's data in place, without a reload."""

from __future__ import annotations

import time
from datetime import datetime

import streamlit as st

from application import live
from application.context import Context
from dashboard.connection import get_cursor
from data.datasets import Dataset

POLL_SECONDS = 2.0
REFRESH_SECONDS = 6.0  # at most this often the whole page reruns, so a busy feed never keeps it redrawing


def live_updates(dataset: Dataset, key: str) -> None:
    """Draw the live indicator of page `key` for `dataset` and keep the page current."""
    ctx = Context(get_cursor(), "app")
    opened_key, seen_key = f"live-opened-{key}-{dataset.id}", f"live-seen-{key}-{dataset.id}"
    latest = live.latest_arrival(ctx, dataset)
    st.session_state.setdefault(opened_key, latest or datetime.min)
    st.session_state[seen_key] = latest  # what this run of the page shows
    refreshed_key = f"live-refreshed-{key}-{dataset.id}"
    st.session_state[refreshed_key] = time.monotonic()
    left, right = st.columns([4, 1], vertical_alignment="center")
    auto = right.toggle("Live updates", value=True, key=f"live-auto-{key}",
                        help=f"Every {POLL_SECONDS:.0f} s, show transactions scored through the API without a reload.")

    @st.fragment(run_every=POLL_SECONDS if auto else None)
    def indicator() -> None:
        reader = Context(get_cursor(), "app")
        newest = live.latest_arrival(reader, dataset)
        due = time.monotonic() - st.session_state.get(refreshed_key, 0.0) >= REFRESH_SECONDS
        if auto and due and newest is not None and newest != st.session_state.get(seen_key):
            st.rerun(scope="app")  # new transactions: refresh the whole page's data
        count = live.new_alerts(reader, dataset, st.session_state[opened_key])
        if count:
            text, button = st.columns([3, 1], vertical_alignment="center")
            text.warning(f"**{count:,} new alert{'s' if count != 1 else ''}** arrived through the API since you "
                         f"opened this page (latest at {newest:%H:%M:%S}).", icon=":material/notifications_active:")
            if button.button("Mark as seen", key=f"live-seen-button-{key}"):
                st.session_state[opened_key] = newest
                st.rerun(scope="app")
        elif newest is not None:
            st.caption(f"Live: the latest transaction scored through the API arrived at {newest:%Y-%m-%d %H:%M:%S}.")

    with left:
        indicator()
