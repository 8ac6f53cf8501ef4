"""`centinela rules` and `centinela lists` as a user runs them: a separate process on $CENTINELA_DB."""

from __future__ import annotations

import json

import pytest

from data.db import connect
from tests.conftest import digest, run_cli

NIGHT = "amount > 3 * cust_mean_amount_7d AND hour < 6"


@pytest.fixture
def bank(db_path):
    run_cli("generate", "--rows", "3000", "--name", "bank", "--seed", "5", "--fraud-rate", "0.02", db=db_path, check=True)
    run_cli("fit", "bank", "--detector", "isolation_forest", db=db_path, check=True)
    return db_path


def test_a_refused_condition_exits_2_with_the_parsers_message_and_changes_nothing(bank):
    conn = connect(bank)
    before = digest(conn)
    conn.close()
    for condition, words in (("amout > 1", "unknown column `amout` — did you mean `amount`?"),
                             ("read_csv('/etc/passwd') IS NULL", "function read_csv() is not accepted"),
                             ("amount > 1; DROP TABLE tx_1", "';' is not accepted")):
        result = run_cli("rules", "add", "bank", "bad", "--condition", condition, db=bank)
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and "column " in result.stderr
    conn = connect(bank)
    assert digest(conn) == before
    conn.close()


def test_add_backtest_activate_list_and_show(bank):
    added = run_cli("rules", "add", "bank", "night_big", "--condition", NIGHT, "--severity", "8",
                    "--description", "big at night", db=bank, check=True)
    assert "drafted rule 'night_big' (version 1)" in added.stdout
    report = json.loads(run_cli("rules", "backtest", "bank", "night_big", "--from", "2026-08-01", "--until", "2026-08-31",
                                "--json", db=bank, check=True).stdout)
    assert {"hits", "precision", "recall", "already_alerted", "added", "added_per_day", "per_day"} <= set(report)
    assert report["hits"] == sum(d["hits"] for d in report["per_day"]) > 0
    assert 0 <= report["precision"] <= 1 and 0 <= report["recall"] <= 1
    text = run_cli("rules", "backtest", "bank", "night_big", "--from", "2026-08-01", "--until", "2026-08-31", db=bank,
                   check=True).stdout
    assert f"{report['hits']:,} hits" in text and "precision" in text
    run_cli("rules", "activate", "bank", "night_big", db=bank, check=True)
    listed = json.loads(run_cli("rules", "list", "bank", "--json", db=bank, check=True).stdout)
    assert [(r["name"], r["status"], r["severity"]) for r in listed] == [("night_big", "active", 8)]
    run_cli("rules", "edit", "bank", "night_big", "--severity", "9", db=bank, check=True)
    run_cli("rules", "restore", "bank", "night_big", "1", db=bank, check=True)
    shown = json.loads(run_cli("rules", "show", "bank", "night_big", "--json", db=bank, check=True).stdout)
    assert shown["version"] == 3 and shown["severity"] == 8 and len(shown["versions"]) == 3
    run_cli("rules", "retire", "bank", "night_big", db=bank, check=True)
    again = run_cli("rules", "retire", "bank", "night_big", db=bank)
    assert again.returncode == 2 and "already retired" in again.stderr


def test_lists_create_add_import_remove(bank, tmp_path):
    run_cli("lists", "create", "bank", "ring", "--kind", "block", "--key", "customer_id", db=bank, check=True)
    run_cli("lists", "add", "bank", "ring", "C0000001", "--reason", "fraud ring", "--expires", "2099-01-01",
            db=bank, check=True)
    bad = tmp_path / "bad.csv"
    bad.write_text("value,reason\nC0000002,ring\nC0000003,\n")
    refused = run_cli("lists", "import", "bank", "ring", str(bad), db=bank)
    assert refused.returncode == 2 and "bad.csv, row 3, column 'reason'" in refused.stderr
    good = tmp_path / "good.csv"
    good.write_text("value,reason\nC0000002,ring\nC0000003,ring\n")
    assert "imported 2 entries" in run_cli("lists", "import", "bank", "ring", str(good), db=bank, check=True).stdout
    entries = json.loads(run_cli("lists", "list", "bank", "ring", "--json", db=bank, check=True).stdout)
    assert sorted(e["value"] for e in entries) == ["C0000001", "C0000002", "C0000003"]
    run_cli("lists", "remove", "bank", "ring", "C0000001", "--reason", "cleared", db=bank, check=True)
    history = run_cli("lists", "history", "bank", "ring", "C0000001", db=bank, check=True).stdout.splitlines()
    assert "remove 'C0000001' — cleared" in history[0] and "add 'C0000001' — fraud ring" in history[1]
    summary = run_cli("lists", "list", "bank", db=bank, check=True).stdout
    assert "ring" in summary and "2 entries" in summary
