"""`centinela backup` and `centinela restore` as an operator runs them: a round trip, and both
refused (exit status 3, saying what to do) while another process holds the database."""

from __future__ import annotations

import json
import subprocess
import sys

from data.db import connect
from tests.conftest import ROOT, digest, run_cli

HOLDER = "import sys, time; from data.db import connect; c = connect(sys.argv[1]); print('ready', flush=True); time.sleep(120)"


def test_backup_and_restore_round_trip_from_the_command_line(tmp_path):
    db = tmp_path / "ops.duckdb"
    run_cli("generate", "--rows", "1500", "--name", "kept", "--days", "10", db=db, check=True)
    run_cli("fit", "kept", "--detector", "hbos", db=db, check=True)
    conn = connect(db)
    before = {k: v for k, v in digest(conn).items() if k != "audit"}
    conn.close()
    taken = run_cli("backup", str(tmp_path / "b1"), "--json", db=db, check=True)
    report = json.loads(taken.stdout)
    assert report["tables"]["runs"] == 1 and len(report["models"]) == 1
    run_cli("delete", "kept", db=db, check=True)
    restored = run_cli("restore", str(tmp_path / "b1"), db=db, check=True)
    assert "restored" in restored.stdout and ".before-restore" in restored.stdout
    conn = connect(db)
    assert {k: v for k, v in digest(conn).items() if k != "audit"} == before
    conn.close()
    assert "kept" in run_cli("datasets", db=db, check=True).stdout
    again = run_cli("backup", str(tmp_path / "b1"), db=db)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_both_are_refused_while_another_process_holds_the_database(tmp_path):
    db = tmp_path / "held.duckdb"
    run_cli("generate", "--rows", "1000", "--name", "kept", "--days", "5", "--no-features", db=db, check=True)
    run_cli("backup", str(tmp_path / "b1"), db=db, check=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    try:
        assert holder.stdout.readline().strip() == "ready"
        backup = run_cli("backup", str(tmp_path / "b2"), db=db)
        assert backup.returncode == 3 and "Users & audit" in backup.stderr and not (tmp_path / "b2").exists()
        restore = run_cli("restore", str(tmp_path / "b1"), db=db)
        assert restore.returncode == 3 and "needs the app stopped" in restore.stderr
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "held.duckdb.before-restore").exists()  # nothing was replaced
