"""The `centinela` command line, run as a separate process against $CENTINELA_DB."""

from __future__ import annotations

import json

import pytest

from application import datasets as app_datasets
from data.datasets import get_dataset, list_datasets
from data.db import connect
from data.features import load_feature_set
from detectors.supervised import DEFAULT_MODEL
from tests.conftest import as_user, digest, run_cli
from tests.samples import BAD_FILES, GOOD, SHAPES, write_file, write_shape


def test_generate_lists_and_computes_features(db_path):
    result = run_cli("generate", "--rows", "3000", "--name", "cli-demo", "--seed", "5", "--fraud-rate", "0.01", db=db_path)
    assert result.returncode == 0, result.stderr
    assert "generated 'cli-demo': 3,000 rows" in result.stdout
    assert "[" in result.stderr and "%]" in result.stderr  # progress lines
    listed = json.loads(run_cli("datasets", "--json", db=db_path, check=True).stdout)
    assert listed[0]["name"] == "cli-demo" and listed[0]["rows"] == 3000 and listed[0]["label_column"] == "is_fraud"
    table = run_cli("datasets", db=db_path, check=True).stdout
    assert "cli-demo" in table and "3,000" in table
    conn = connect(db_path)
    dataset = get_dataset(conn, "cli-demo")
    assert dataset.row_count == 3000
    assert conn.execute(f"SELECT count(*) FILTER (is_fraud) FROM {dataset.table}").fetchall()[0][0] == 30
    assert load_feature_set(conn, dataset) is not None
    conn.close()


def test_same_seed_generates_identical_datasets(db_path, tmp_path):
    for name in ("a", "b"):
        run_cli("generate", "--rows", "2000", "--name", name, "--seed", "9", "--no-features", db=db_path, check=True)
    for name in ("a", "b"):
        run_cli("export", name, "--out", str(tmp_path / f"{name}.csv"), db=db_path, check=True)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_features_command_prints_the_catalogue(db_path):
    run_cli("generate", "--rows", "2000", "--name", "f", "--no-features", db=db_path, check=True)
    shown = json.loads(run_cli("features", "f", "--show", "--json", db=db_path, check=True).stdout)
    assert {r["status"] for r in shown} == {"not computed"}
    computed = run_cli("features", "f", "--label-delay-days", "3", db=db_path, check=True)
    assert "computed" in computed.stdout and "amount_zscore_customer" in computed.stdout
    rows = json.loads(run_cli("features", "f", "--show", "--json", db=db_path, check=True).stdout)
    assert {r["status"] for r in rows} == {"computed"}


def test_export_then_import_round_trips(db_path, tmp_path):
    run_cli("generate", "--rows", "2500", "--name", "orig", "--no-features", db=db_path, check=True)
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"orig{suffix}"
        run_cli("export", "orig", "--out", str(out), db=db_path, check=True)
        run_cli("import", str(out), "--name", f"copy{suffix[1:]}", "--no-features", db=db_path, check=True)
    conn = connect(db_path)
    orig, copy_csv, copy_pq = (get_dataset(conn, n) for n in ("orig", "copycsv", "copyparquet"))
    for copy in (copy_csv, copy_pq):
        assert copy.row_count == orig.row_count
        assert {c.role for c in copy.columns} == {c.role for c in orig.columns}
        diff = conn.execute(
            f"SELECT count(*) FROM (SELECT transaction_id, ts, amount, customer_id, is_fraud FROM {orig.table} "
            f"EXCEPT SELECT transaction_id, ts, amount, customer_id, is_fraud FROM {copy.table})"
        ).fetchall()[0][0]
        assert diff == 0
    conn.close()


def test_delete_moves_to_trash(db_path):
    run_cli("generate", "--rows", "1000", "--name", "gone", "--no-features", db=db_path, check=True)
    assert "trash" in run_cli("delete", "gone", db=db_path, check=True).stdout
    conn = connect(db_path)
    assert list_datasets(conn) == [] and [d.name for d in list_datasets(conn, deleted=True)] == ["gone"]
    conn.close()


def test_bad_arguments_exit_nonzero_with_a_message(db_path):
    missing = run_cli("features", "nope", db=db_path)
    assert missing.returncode == 2 and "no dataset named 'nope'" in missing.stderr
    rows = run_cli("generate", "--rows", "5", "--name", "x", db=db_path)
    assert rows.returncode == 2 and "rows must be between" in rows.stderr
    name = run_cli("generate", "--rows", "1000", "--name", "a/b", db=db_path)
    assert name.returncode == 2 and "not allowed" in name.stderr
    out = run_cli("export", "nope", "--out", "x.xlsx", db=db_path)
    assert out.returncode == 2


def test_cli_honours_centinela_db(tmp_path):
    first, second = tmp_path / "one.duckdb", tmp_path / "two.duckdb"
    run_cli("generate", "--rows", "1000", "--name", "only-here", "--no-features", db=first, check=True)
    assert json.loads(run_cli("datasets", "--json", db=second, check=True).stdout) == []
    assert [d["name"] for d in json.loads(run_cli("datasets", "--json", db=first, check=True).stdout)] == ["only-here"]


def test_label_file_retrain_promote_and_models(db_path, tmp_path):
    run_cli("generate", "--rows", "20000", "--name", "loop", "--seed", "3", "--fraud-rate", "0.01", "--days", "40",
            db=db_path, check=True)
    run_cli("fit", "loop", "--train-until", "2026-08-29", db=db_path, check=True)
    conn = connect(db_path)
    dataset = get_dataset(conn, "loop")
    ids = [r[0] for r in conn.execute(f"SELECT transaction_id FROM {dataset.table} ORDER BY tx_row LIMIT 3").fetchall()]
    conn.close()
    labels = tmp_path / "labels.csv"
    labels.write_text(f"transaction_id,label,analyst,note\n{ids[0]},fraud,ana,=HYPERLINK(\"x\")\n{ids[1]},Legitimate,,\n"
                      f"{ids[2]},unsure,bob,call back\n", encoding="utf-8")
    result = run_cli("label", "loop", "--file", str(labels), "--analyst", "carla", db=db_path)
    assert result.returncode == 0, result.stderr
    assert "added 3 labels" in result.stdout
    conn = connect(db_path)
    rows = conn.execute("SELECT transaction_id, label, analyst, note FROM current_labels ORDER BY transaction_id").fetchall()
    conn.close()
    assert rows == [(ids[0], "fraud", "ana", '=HYPERLINK("x")'), (ids[1], "legitimate", "carla", None),
                    (ids[2], "unsure", "bob", "call back")]

    result = run_cli("retrain", "loop", "--train-until", "2026-08-29", "--json", db=db_path)
    assert result.returncode == 0, result.stderr
    version = json.loads(result.stdout)
    assert version["model"] == DEFAULT_MODEL and version["average_precision"] > version["baseline"]["average_precision"]
    assert version["search"] is None
    listed = json.loads(run_cli("models", "loop", "--json", db=db_path, check=True).stdout)
    assert [(r["kind"], r["active"]) for r in listed] == [("detector", True), ("supervised", False)]
    promoted = run_cli("promote", "loop", str(version["version"]), db=db_path)
    assert promoted.returncode == 0 and "now ranks the queue" in promoted.stdout
    listed = json.loads(run_cli("models", "loop", "--json", db=db_path, check=True).stdout)
    assert [r["active"] for r in listed] == [False, True]
    evaluated = json.loads(run_cli("evaluate", "loop", "--json", db=db_path, check=True).stdout)
    assert evaluated["run"] == version["version"] and evaluated["period"]["from"].startswith("2026-08-29")
    assert 0 <= evaluated["card_precision_at_k_handbook"] <= evaluated["card_precision_at_k"] <= 1
    shown = run_cli("evaluate", "loop", db=db_path, check=True).stdout
    assert "handbook's, known compromised cards left out" in shown

    searched = run_cli("retrain", "loop", "--model", "rf", "--imbalance", "undersample", "--search", "3",
                       "--train-until", "2026-08-29", "--json", db=db_path)
    assert searched.returncode == 0, searched.stderr
    forest = json.loads(searched.stdout)
    assert forest["model"] == "rf" and forest["search"]["trials"] == 3 and "Searching" in searched.stderr
    refused = run_cli("retrain", "loop", "--search", "500", db=db_path)
    assert refused.returncode == 2 and "a search tries 0 to 200 configurations" in refused.stderr


def test_a_bad_label_file_is_rejected_whole(db_path, tmp_path):
    run_cli("generate", "--rows", "2000", "--name", "l", "--no-features", db=db_path, check=True)
    conn = connect(db_path)
    dataset = get_dataset(conn, "l")
    ids = [r[0] for r in conn.execute(f"SELECT transaction_id FROM {dataset.table} LIMIT 3").fetchall()]
    conn.close()
    cases = {
        "bad label": (f"transaction_id,label\n{ids[0]},fraud\n{ids[1]},maybe\n", "row 3, column 'label': 'maybe' is not a label"),
        "unknown id": (f"transaction_id,label\n{ids[0]},fraud\nNOPE,fraud\n", "row 3, column 'transaction_id': transaction 'NOPE'"),
        "twice": (f"transaction_id,label\n{ids[0]},fraud\n{ids[0]},legitimate\n", "row 2, column 'transaction_id'"),
        "no label column": (f"transaction_id,verdict\n{ids[0]},fraud\n", "no 'label' column"),
        "empty id": (f"transaction_id,label\n{ids[0]},fraud\n,fraud\n", "row 3, column 'transaction_id': the transaction id is empty"),
        "only header": ("transaction_id,label\n", "a header but no labels"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        result = run_cli("label", "l", "--file", str(path), db=db_path)
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert message in result.stderr and path.name in result.stderr, (name, result.stderr)
    conn = connect(db_path)
    assert conn.execute("SELECT count(*) FROM labels").fetchall() == [(0,)]  # nothing half-applied
    conn.close()


def test_users_and_audit_commands(db_path):
    first = run_cli("users", "first-admin", db=db_path)  # no terminal, no environment: says how
    assert first.returncode == 0 and "CENTINELA_ADMIN_PASSWORD" in first.stdout
    added = run_cli("users", "add", "boss", "--role", "admin", "--password-stdin", db=db_path,
                    stdin="a long admin password\n")
    assert added.returncode == 0, added.stderr
    short = run_cli("users", "add", "rosa", "--role", "manager", "--password-stdin", db=db_path, stdin="short\n")
    assert short.returncode == 2 and "too short" in short.stderr
    run_cli("users", "add", "rosa", "--role", "manager", "--password-stdin", db=db_path, check=True,
            stdin="another long password\n")
    changed = run_cli("users", "set", "rosa", "--role", "analyst", "--disable", db=db_path)
    assert changed.returncode == 0, changed.stderr
    listed = json.loads(run_cli("users", "list", "--json", db=db_path, check=True).stdout)
    assert [(u["username"], u["role"], u["disabled_at"] is not None) for u in listed] == \
        [("boss", "admin", False), ("rosa", "analyst", True)]
    trail = [json.loads(line) for line in run_cli("audit", "--json", db=db_path, check=True).stdout.splitlines()]
    assert [t["action"] for t in trail] == ["user_change", "user_add", "user_add"]
    assert all(t["actor"].startswith("cli:") for t in trail)
    assert '"role": "manager"' in trail[0]["before"] and '"disabled": true' in trail[0]["after"]
    printed = run_cli("audit", "--json", db=db_path, check=True).stdout
    assert "a long admin password" not in printed and "another long password" not in printed


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_imports_through_the_command_line(db_path, tmp_path, shape):
    path, frame = write_shape(tmp_path, shape)
    result = run_cli("import", str(path), "--name", shape, db=db_path)
    assert result.returncode == 0, result.stderr
    assert f"{len(frame):,} of {len(frame):,} rows" in result.stdout
    assert "%]" in result.stderr  # progress lines
    listed = json.loads(run_cli("datasets", "--json", db=db_path, check=True).stdout)
    assert [(d["name"], d["rows"]) for d in listed] == [(shape, len(frame))]
    assert listed[0]["label_column"] == SHAPES[shape][1].get("label")


def test_cli_map_overrides_the_guess(db_path, tmp_path):
    path, frame = write_shape(tmp_path, "user_device")
    shown = run_cli("import", str(path), "--name", "x", "--map", "customer_id=device_id", "--map", "device_id=",
                    "--show-mapping", db=db_path, check=True)
    roles = json.loads(shown.stdout)["roles"]
    assert roles["customer_id"] == "device_id" and "device_id" not in roles
    run_cli("import", str(path), "--name", "by-device", "--map", "customer_id=device_id", "--map", "device_id=",
            db=db_path, check=True)
    from data.db import connect

    conn = connect(db_path)
    dataset = get_dataset(conn, "by-device")
    customers = sorted(r[0] for r in conn.execute(f"SELECT DISTINCT customer_id FROM {dataset.table}").fetchall())
    assert customers == sorted(frame["device_id"].unique())
    assert [d.name for d in list_datasets(conn)] == ["by-device"]
    conn.close()


def test_cli_fit_score_evaluate(db_path):
    run_cli("generate", "--rows", "4000", "--name", "c", "--fraud-rate", "0.02", db=db_path, check=True)
    fitted = run_cli("fit", "c", "--detector", "ecod", "--contamination", "0.02", "--train-until", "2026-09-30",
                     "--json", db=db_path, check=True)
    run = json.loads(fitted.stdout)
    assert run["detector"] == "ecod" and run["contamination"] == 0.02 and "[" in fitted.stderr
    ensemble = run_cli("fit", "c", "--detector", "isolation_forest", "--detector", "hbos", "--param", "hbos.n_bins=15",
                       "--combine", "max", db=db_path, check=True)
    assert "run #2: ensemble" in ensemble.stdout and "recall" in ensemble.stdout
    evaluated = json.loads(run_cli("evaluate", "c", "--run", str(run["id"]), "--json", db=db_path, check=True).stdout)
    assert evaluated["run"] == run["id"] and 0 <= evaluated["average_precision"] <= 1
    assert evaluated["period"]["from"].startswith("2026-09-30")
    window = json.loads(run_cli("evaluate", "c", "--run", str(run["id"]), "--test-from", "2026-10-10", "--test-until",
                                "2026-10-20", "--json", db=db_path, check=True).stdout)
    assert window["rows"] < evaluated["rows"]
    scored = run_cli("score", "c", "--contamination", "0.05", db=db_path, check=True)
    assert "run #2: scored 4,000 rows; 200 alerts" in scored.stdout
    bad = run_cli("fit", "c", "--detector", "knn", "--param", "n_neighbors=0", db=db_path)
    assert bad.returncode == 2 and "n_neighbors must be between 1 and 100" in bad.stderr
    ambiguous = run_cli("fit", "c", "--detector", "knn", "--detector", "lof", "--param", "n_neighbors=3", db=db_path)
    assert ambiguous.returncode == 2 and "DETECTOR.n_neighbors" in ambiguous.stderr
    none = run_cli("evaluate", "c", "--run", "99", db=db_path)
    assert none.returncode == 2 and "no run #99" in none.stderr


@pytest.mark.parametrize("case", ["bad_timestamp", "duplicate_ids", "ragged_short", "zero_bytes", "latin1_as_utf8"])
def test_command_line_exits_nonzero_with_the_same_message(db_path, tmp_path, case):
    conn = connect(db_path)
    app_datasets.import_dataset(as_user(conn, "test"), write_file(tmp_path, "good.csv", GOOD), "existing", features=False)
    before = digest(conn)
    conn.close()
    name, content, fragments = BAD_FILES[case]
    result = run_cli("import", str(write_file(tmp_path, name, content)), "--name", "attempt", db=db_path)
    assert result.returncode == 2
    for fragment in fragments:
        assert fragment in result.stderr
    conn = connect(db_path)
    assert digest(conn) == before
    conn.close()
