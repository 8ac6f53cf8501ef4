"""The one error boundary for writes from pages: every button that changes something calls
`act`, which runs one application-layer action and renders its outcome.

- A `UserError` (bad input, not found, conflict, forbidden) is shown as an error box, with the
  reassurance that nothing was changed: the action's unit of work rolled back.
- Anything else is a bug, and surfaces as one (Streamlit's exception box), never dressed up as
  a message about the user's input.
- On success the message is kept for the top of the next run, and the page reruns so every
  panel shows the change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from application.context import Context
from dashboard.connection import get_cursor
from dashboard.progress import progress_status
from dashboard.state import current_analyst, flash
from data.errors import UserError

T = TypeVar("T")
UNCHANGED = "Nothing was changed; the database is unchanged."


def page_context() -> Context:
    """The signed-in user's context on this thread's cursor (for reads; `act` makes its own)."""
    return Context(get_cursor(), current_analyst() or "app")


def act(action: Callable[[Context], T], success: str | Callable[[T], str] | None = None, *,
        status: str | None = None, then: Callable[[T], None] | None = None, rerun: bool = True) -> T | None:
    """Run `action(ctx)`; on a UserError show it and return None, else flash `success` (a text,
    or a function of the result), call `then(result)` and rerun. With `status`, long work reports
    into a status box with a progress bar."""
    ctx = page_context()
    try:
        if status is None:
            result = action(ctx)
        else:
            with progress_status(status) as report:
                result = action(ctx.with_progress(report))
    except UserError as exc:
        st.error(str(exc))
        st.caption(UNCHANGED)
        return None
    if success is not None:
        flash("success", success(result) if callable(success) else success)
    if then is not None:
        then(result)
    if rerun:
        st.rerun()
    return result
