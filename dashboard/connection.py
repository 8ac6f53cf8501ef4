"""One DuckDB connection per process, shared by every session and the HTTP API; one cursor per thread."""

from __future__ import annotations

import duckdb

from data.db import thread_cursor


def get_cursor() -> duckdb.DuckDBPyConnection:
    """This thread's cursor on the process-wide connection to $CENTINELA_DB.

    Streamlit runs each session's script in its own thread, the API its requests in a thread
    pool; DuckDB cursors are independent connections to the same database, safe side by side.
    """
    return thread_cursor()
