"""The server keeps what live scoring loads (the model, the history in memory) out of the cyclic
garbage collector's walks (application/heap.py); cycles frozen once are freed at the next freeze
when they have died; serve.py's startup turns it on; other processes keep Python's defaults."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import weakref

import pytest

from application import heap
from application import live as app_live
from application.context import Context
from detectors import runs as run_store
from tests.conftest import ROOT
from tests.live import DATASET, bearer, live_client

URL = f"/v1/datasets/{DATASET}/transactions"


@pytest.fixture
def fresh_caches(monkeypatch):
    """No model or history kept from another test: this test's own loads are the ones checked."""
    monkeypatch.setattr(app_live, "_MODELS", {})
    monkeypatch.setattr(app_live, "_HISTORY", {})


@pytest.fixture
def server_heap(fresh_caches):
    heap.enable()  # as serve.py's lifespan does
    try:
        yield
    finally:
        heap.disable()
        gc.unfreeze()


def _tracked(*objects: object) -> list[bool]:
    ids = {id(o) for o in gc.get_objects()}  # the collector's generations; frozen objects are not listed
    return [id(o) in ids for o in objects]


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_the_server_freezes_the_history_then_a_model_loaded_later(tmp_path, server_heap):
    with live_client(tmp_path, rows=2_000, days=20, live_days=3) as (client, conn, setup, rows):
        response = client.post(URL, json={"transactions": rows[:1]}, headers=bearer(setup.keys["scorer"]))
        assert response.status_code == 200, response.text
        ctx = Context(conn, "cli:test")
        dataset = ctx.dataset(DATASET)
        history = app_live._HISTORY[dataset.id]
        assert _tracked(history, history.customers) == [False, False]
        made_after = [object()]  # objects made afterwards are collected as usual
        assert _tracked(made_after) == [True]
        assert gc.get_freeze_count() > 10_000  # the imports' objects too
        # A model loaded after the history (a promotion) is frozen when it is loaded.
        app_live._MODELS.clear()
        run = run_store.get_run(conn, response.json()["decisions"][0]["model"]["run"])
        model = app_live.loaded_model(ctx, dataset, run)
        assert _tracked(model, model.occlusion) == [False, False]


def test_a_frozen_cycle_that_died_is_freed_at_the_next_freeze(server_heap):
    node = _Node()
    heap.freeze_long_lived()
    assert _tracked(node) == [False]
    dead = weakref.ref(node)
    del node
    gc.collect()
    assert dead() is not None  # frozen: a collection does not see it
    heap.freeze_long_lived()
    assert dead() is None


def test_other_processes_freeze_nothing(tmp_path, fresh_caches):
    with live_client(tmp_path, rows=2_000, days=20, live_days=3) as (client, conn, setup, rows):
        response = client.post(URL, json={"transactions": rows[:1]}, headers=bearer(setup.keys["scorer"]))
        assert response.status_code == 200, response.text
        history = next(iter(app_live._HISTORY.values()))
    assert gc.get_freeze_count() == 0
    assert _tracked(history) == [True]


def test_the_servers_startup_freezes_what_the_imports_built(tmp_path):
    script = ("import asyncio, gc, json, serve\n"
              "async def main():\n"
              "    before = gc.get_freeze_count()\n"
              "    async with serve.lifespan(serve.app):\n"
              "        print(json.dumps([before, gc.get_freeze_count()]))\n"
              "asyncio.run(main())\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    shown = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                           env={**env, "PYTHONPATH": str(ROOT), "CENTINELA_DB": str(tmp_path / "x.duckdb")})
    assert shown.returncode == 0, shown.stderr
    before, during = json.loads(shown.stdout.strip().splitlines()[-1])
    assert before == 0 and during > 10_000
