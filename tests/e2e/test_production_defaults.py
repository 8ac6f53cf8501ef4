"""`make run`'s production defaults hold when the app is served by `uvicorn serve:app`: headless,
no file watcher, no rerun on save, no full garbage collection after each script run (from
.streamlit/config.toml beside app.py), whatever the working directory; and a served browser
session opens no inotify watch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import admin_env, chromium_page, live_server
from tests.conftest import ROOT

OPTIONS = ["server.fileWatcherType", "server.runOnSave", "server.headless", "browser.gatherUsageStats",
           "runner.postScriptGC"]


def test_the_config_applies_to_the_app_uvicorn_serves(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    shown = subprocess.run(
        [sys.executable, "-c", "import json, serve; from streamlit import config; "
                               f"print(json.dumps({{k: config.get_option(k) for k in {OPTIONS!r}}}))"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT), "CENTINELA_DB": str(tmp_path / "x.duckdb")},
        capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(shown.stdout.strip().splitlines()[-1]) == {
        "server.fileWatcherType": "none", "server.runOnSave": False, "server.headless": True,
        "browser.gatherUsageStats": False, "runner.postScriptGC": False}


def _inotify_watches(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if "inotify" in os.readlink(fd))


@pytest.mark.browser
def test_a_served_session_starts_no_file_watcher(tmp_path):
    db = tmp_path / "quiet.duckdb"
    with live_server(db, env={"CENTINELA_DEMO_ROWS": "2000", **admin_env()}) as (url, process), chromium_page() as page:
        page.goto(url)
        page.get_by_test_id("stForm").filter(has_text="Sign in").wait_for(timeout=60_000)  # a session runs
        page.wait_for_timeout(1_000)
        assert _inotify_watches(process.pid) == 0
    log = next(tmp_path.glob("server-*.log")).read_text()
    assert "Inotify" not in log and "watchdog" not in log.lower()


def test_make_run_and_the_image_take_the_bind_address_and_port_from_the_environment():
    run = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "uvicorn serve:app --host $(HOST) --port $(PORT)" in run
    docker = (ROOT / "Dockerfile").read_text()
    cmd = next(line for line in docker.splitlines() if line.startswith("CMD "))
    assert 'exec uvicorn serve:app --host \\"$HOST\\" --port \\"$PORT\\""]' in cmd, cmd  # after the first admin
    assert "127.0.0.1:$PORT/api/v1/health" in docker  # the health check follows the port
