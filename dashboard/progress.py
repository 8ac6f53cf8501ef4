"""Long work reports progress through a callback; here it becomes a Streamlit status box."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from data.db import ProgressFn


@contextmanager
def progress_status(label: str) -> Iterator[ProgressFn]:
    """Show a status box with a progress bar; yields the callback long work reports to."""
    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0, text="Starting")

        def report(fraction: float, message: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=message)

        try:
            yield report
        except Exception:
            status.update(label=f"{label}: failed", state="error")
            raise
        status.update(label=f"{label}: done", state="complete", expanded=False)
