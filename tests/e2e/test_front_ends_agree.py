"""The command line and the pages are two front ends of the same actions: the same input through
either gives the same stored result, the same audit row and, when refused, the same message."""

from __future__ import annotations

import json
from datetime import date

import pytest

from application import datasets as app_datasets
from data.audit import audit_log
from data.datasets import get_dataset
from data.db import connect
from data.synthetic import SyntheticConfig
from tests.apptest import app, one, pick_server_file
from tests.conftest import as_user, run_cli

pytestmark = pytest.mark.usefixtures("server_like_navigation")
ROWS, SEED, TRAIN_UNTIL = 3_000, 5, "2026-10-01"
VOLATILE = {"features"}  # nothing else in an audit row's after-values may differ


def _after(conn, action: str) -> dict:
    return json.loads(audit_log(conn, actions=(action,)).iloc[0]["after"])


def _content(conn, name: str) -> tuple:
    dataset = get_dataset(conn, name)
    return conn.execute(f"SELECT count(*), sum(hash(transaction_id, ts, amount, customer_id, is_fraud)) "
                        f"FROM {dataset.table}").fetchall()[0]


def _page_errors(at) -> list[str]:
    return [e.value for e in at.error]


def _cli_error(result) -> str:
    """The command line's message: its last stderr line, after the progress lines."""
    return result.stderr.strip().splitlines()[-1].removeprefix("error: ")


def test_generate_and_fit_give_the_same_result_from_either_front_end(tmp_path, monkeypatch):
    # The command line, on one database ...
    cli_db = tmp_path / "cli.duckdb"
    run_cli("generate", "--rows", str(ROWS), "--name", "bank", "--seed", str(SEED), db=cli_db, check=True)
    run_cli("fit", "bank", "--detector", "hbos", "--contamination", "0.02", "--train-until", TRAIN_UNTIL,
            db=cli_db, check=True)
    refused_cli = run_cli("generate", "--rows", str(ROWS), "--name", "bank", db=cli_db)

    # ... the pages, on another (which holds one other dataset, so no demo is generated).
    page_db = tmp_path / "page.duckdb"
    monkeypatch.setenv("CENTINELA_DB", str(page_db))
    conn = connect(page_db)
    app_datasets.generate(as_user(conn), "other", SyntheticConfig(rows=1_000, seed=1))
    conn.close()
    at = app().run()
    at.text_input(key="generate-name").set_value("bank")
    one(at.number_input, "Transactions").set_value(ROWS)
    one(at.number_input, "Seed").set_value(SEED)
    one(at.button, "Generate").click()
    at.run()
    assert not at.exception, at.exception
    at.switch_page("pages/detect.py").run()
    at.multiselect(key="detect-detectors").set_value(["hbos"]).run()
    one(at.number_input, "Contamination (share of rows to alert on)").set_value(0.02)
    one(at.date_input, "Train until (evaluate from this day on)").set_value(date.fromisoformat(TRAIN_UNTIL))
    one(at.button, "Fit and score").click()
    at.run()
    assert not at.exception, at.exception
    at.switch_page("pages/data.py").run()
    at.text_input(key="generate-name").set_value("bank")
    one(at.button, "Generate").click()
    at.run()
    refused_page = _page_errors(at)

    cli, page = connect(cli_db), connect(page_db)
    try:
        assert _content(cli, "bank") == _content(page, "bank")
        for action in ("generate", "fit"):
            from_cli, from_page = _after(cli, action), _after(page, action)
            assert {k: v for k, v in from_cli.items() if k not in VOLATILE} == \
                   {k: v for k, v in from_page.items() if k not in VOLATILE}, action
        assert _after(cli, "fit")["features"] == _after(page, "fit")["features"]  # the same feature version
        cli_run = cli.execute("SELECT metrics FROM runs WHERE detector = 'hbos'").fetchall()[0][0]
        page_run = page.execute("SELECT metrics FROM runs WHERE detector = 'hbos'").fetchall()[0][0]
        assert json.loads(cli_run) == json.loads(page_run)  # same data, same fit, same metrics
    finally:
        cli.close()
        page.close()
    # The same refusal, word for word.
    assert refused_cli.returncode == 2
    assert refused_page == [_cli_error(refused_cli)]
    assert "%]" not in refused_cli.stderr  # refused before any work: no progress line
    assert "a dataset named 'bank' already exists" in refused_page[0]


def test_a_bad_file_is_refused_with_the_same_message_by_either_front_end(tmp_path, monkeypatch):
    bad = tmp_path / "bank.csv"
    bad.write_text("timestamp,amount\n2024-01-01 10:00,5\n2024-01-02 11:00,ten\n")
    db = tmp_path / "both.duckdb"
    monkeypatch.setenv("CENTINELA_DB", str(db))
    conn = connect(db)
    app_datasets.generate(as_user(conn), "other", SyntheticConfig(rows=1_000, seed=1))
    conn.close()
    refused_cli = run_cli("import", str(bad), "--name", "bank", db=db)
    at = app().run()
    pick_server_file(at, bad, monkeypatch)
    at.run()
    one(at.button, "Import").click()
    at.run()
    assert refused_cli.returncode == 2
    assert _page_errors(at) == [_cli_error(refused_cli)]
    assert "bank.csv, row 3, column 'amount'" in _page_errors(at)[0]
