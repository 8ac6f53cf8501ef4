"""Uploaded files go to a private temporary file for DuckDB to read, and are removed afterwards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from data.mapping import normalize_name

_STAGED = "staged_upload"


def stage_upload(uploaded) -> Path:
    """Copy a Streamlit upload to a temporary file once, reusing it on reruns until it changes."""
    staged = st.session_state.get(_STAGED)
    if staged and staged[0] == uploaded.file_id and Path(staged[1]).exists():
        return Path(staged[1])
    discard_upload()
    folder = Path(tempfile.mkdtemp(prefix="centinela-upload-"))
    suffix = Path(uploaded.name).suffix.lower()
    target = folder / ("upload" + ("." + normalize_name(suffix) if suffix else ""))
    uploaded.seek(0)
    with target.open("wb") as out:
        shutil.copyfileobj(uploaded, out, length=1 << 20)
    st.session_state[_STAGED] = (uploaded.file_id, str(target))
    return target


def discard_upload() -> None:
    """Remove the staged copy of the current upload, if any."""
    staged = st.session_state.pop(_STAGED, None)
    if staged:
        shutil.rmtree(Path(staged[1]).parent, ignore_errors=True)


@contextmanager
def saved_upload(uploaded) -> Iterator[Path]:
    """A small upload in a private temporary folder under its own name (so messages name the file
    the user chose), removed when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="centinela-upload-"))
    target = folder / (Path(uploaded.name).name or "upload.csv")
    try:
        uploaded.seek(0)
        with target.open("wb") as out:
            shutil.copyfileobj(uploaded, out, length=1 << 20)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)
