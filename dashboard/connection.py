"""One DuckDB connection per process, shared by every session; one cursor per thread."""

from __future__ import annotations

import threading

import duckdb
import streamlit as st

from data.db import connect, database_path


@st.cache_resource(show_spinner=False)
def _connection(path: str) -> duckdb.DuckDBPyConnection:
    return connect(path)


_local = threading.local()


def get_cursor() -> duckdb.DuckDBPyConnection:
    """This thread's cursor on the process-wide connection to $CENTINELA_DB.

    Streamlit runs each session's script in its own thread; DuckDB cursors are independent
    connections to the same database, safe to use side by side.
    """
    conn = _connection(str(database_path().resolve()))
    cursors = getattr(_local, "cursors", None)
    if cursors is None:
        cursors = _local.cursors = {}
    cursor = cursors.get(id(conn))
    if cursor is None:
        cursor = cursors[id(conn)] = conn.cursor()
    return cursor
