"""End to end: a real `streamlit run` server on a fresh database, driven by headless Chromium."""

from __future__ import annotations

import pytest

from application import datasets as app_datasets
from application import labels as app_labels
from application import runs as app_runs
from application import users as app_users
from data.datasets import get_dataset
from data.db import connect
from data.demo import DEFAULT_DEMO_ROWS, DEMO_NAME
from detectors.supervised import DEFAULT_MODEL
from tests.browser import (
    SCREENSHOTS,
    admin_env,
    chromium_page,
    download,
    fresh,
    metric_value,
    sign_in,
    streamlit_server,
)
from tests.conftest import as_user
from tests.samples import write_shape

pytestmark = pytest.mark.browser


def test_fresh_database_shows_the_demo_datasets_row_count(tmp_path):
    db = tmp_path / "fresh.duckdb"
    with streamlit_server(db, env=admin_env()) as url, chromium_page() as page:
        page.goto(url)
        sign_in(page)
        # First start generates the demo dataset (default size) with progress, then shows the Data page.
        page.get_by_role("heading", name="Data").wait_for(timeout=120_000)
        page.get_by_test_id("stMetric").filter(has_text="Rows").wait_for()
        assert metric_value(page, "Rows") == f"{DEFAULT_DEMO_ROWS:,}"
        page.get_by_role("heading", name="Features").wait_for()  # the feature catalogue (drawn on a canvas)
        page.wait_for_timeout(500)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "data.png"))
        # Upload a file shaped like the handbook's data, keep the guessed mapping, import it.
        upload, frame = write_shape(tmp_path, "handbook", rows=120)
        page.get_by_role("tab", name="Import a file").click()
        page.get_by_text("CSV, Parquet or Excel file (up to 500 MB)").wait_for()
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(upload))
        page.get_by_text("Column mapping").wait_for()
        page.get_by_text("Column mapping").scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOTS / "data-import.png"))
        name = page.get_by_label("Dataset name").first
        name.fill("handbook-upload")
        name.press("Enter")  # keyboard submits the form
        page.get_by_text("Imported 120 of 120 rows").wait_for(timeout=60_000)
        assert metric_value(page, "Rows") == f"{len(frame):,}"
        # The import report says how each column was read.
        page.get_by_text("Import report").click()
        page.get_by_text("How each column was read").wait_for()
        page.get_by_test_id("stExpanderDetails").get_by_text("decimal separator '.', thousands ',' or space (detected").wait_for()
        page.get_by_text("How each column was read").scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOTS / "data-report.png"))
        # The demo dataset came with a default run: the Detect page shows its threshold and metrics.
        page.get_by_role("combobox").first.click()  # the sidebar's active-dataset picker
        page.get_by_role("option", name=DEMO_NAME, exact=True).click()
        page.get_by_role("link", name="Detect & tune").click()
        page.get_by_role("tab", name="Threshold & metrics").click()
        page.get_by_test_id("stMetric").filter(has_text="Alerts").wait_for()
        assert metric_value(page, "Alerts") == f"{DEFAULT_DEMO_ROWS // 100:,}"
        page.get_by_test_id("stPlotlyChart").first.wait_for()
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SCREENSHOTS / "detect.png"))
    # The server is gone: the file holds exactly what the page showed.
    conn = connect(db)
    assert get_dataset(conn, DEMO_NAME).row_count == DEFAULT_DEMO_ROWS
    assert get_dataset(conn, "handbook-upload").row_count == len(frame)
    assert conn.execute("SELECT count(*) FROM feature_sets").fetchall()[0][0] == 2  # both got features
    conn.close()


def test_first_request_to_a_page_url_on_a_cold_server(tmp_path):
    db = tmp_path / "cold.duckdb"
    with streamlit_server(db, env={"CENTINELA_DEMO_ROWS": "4000", **admin_env()}) as url, chromium_page() as page:
        page.goto(f"{url}/data")
        sign_in(page)
        page.get_by_test_id("stMetric").filter(has_text="Rows").wait_for(timeout=120_000)
        assert metric_value(page, "Rows") == "4,000"
        page.reload()  # a new Streamlit session, signed in by the session cookie
        page.get_by_test_id("stMetric").filter(has_text="Rows").wait_for()
        assert metric_value(page, "Rows") == "4,000"
        page.get_by_text("Active dataset").first.wait_for()  # the shell is back after the first run


def test_investigate_label_and_reload_with_the_network_closed(tmp_path):
    """Queue -> case -> SHAP chart -> label -> reload keeps it; the map draws with no internet at all."""
    db = tmp_path / "investigate.duckdb"
    outside: list[str] = []
    with streamlit_server(db, env={"CENTINELA_DEMO_ROWS": "20000", **admin_env()}) as url, \
            chromium_page() as page:
        local = url.split("//")[1]

        def only_local(route):  # the network is closed: anything not served by the app fails
            if local in route.request.url.split("/")[2]:
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort("internetdisconnected")

        page.context.route("**/*", only_local)
        page.goto(url)
        sign_in(page)
        page.get_by_test_id("stMetric").filter(has_text="Rows").wait_for(timeout=180_000)  # demo data made
        page.get_by_role("link", name="Alert queue").click()
        page.get_by_test_id("stMetric").filter(has_text="Alerts matching").wait_for()
        assert metric_value(page, "Alerts matching") == "200"  # 1% of 20,000
        # Still signed in after a page change (the sidebar is drawn after the metrics: wait for it).
        page.get_by_test_id("stSidebarUserContent").get_by_text("ana", exact=False).first.wait_for()
        page.wait_for_timeout(800)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "queue.png"))

        page.get_by_role("button", name="Open case").click()
        page.get_by_role("heading", name="Case TX").wait_for()
        case_url = page.url
        assert "case=TX" in case_url
        page.get_by_text("Why it was flagged").wait_for(timeout=60_000)  # the SHAP waterfall's title
        page.get_by_text("red pushes toward suspicious").first.wait_for()
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOTS / "case.png"))

        form = page.get_by_test_id("stForm").filter(has_text="Label this case")
        form.get_by_text("fraud", exact=True).click()
        form.get_by_label("Note (optional)").fill("card reported stolen")
        form.get_by_role("button", name="Save label").click()
        page.get_by_text("as fraud.").wait_for()
        page.reload()  # still signed in (the session cookie)
        page.get_by_test_id("stMetric").filter(has_text="Label").wait_for()
        assert metric_value(page, "Label") == "fraud"
        assert page.url == case_url

        page.get_by_role("link", name="Geo & time").click()
        page.get_by_text("Where alerts happen").wait_for()
        chart = page.get_by_test_id("stPlotlyChart").first
        # The departments (one filled trace) and the cities are drawn from what the app serves.
        outline = chart.locator("g.scatterlayer g.trace").first.locator("path.js-fill")
        assert len(outline.get_attribute("d") or "") > 5_000
        chart.locator("g.scatterlayer g.trace path.point").nth(19).wait_for()  # at least 20 cities
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOTS / "geo.png"))
        page.get_by_role("tab", name="Time").click()
        page.get_by_text("by hour and weekday").wait_for()
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOTS / "time.png"))
        page.get_by_role("tab", name="What drives alerts").click()
        page.get_by_role("button", name="Compute feature importance").click()
        page.get_by_text("Mean |SHAP| per feature").wait_for(timeout=60_000)
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOTS / "drivers.png"))
    assert outside == [], f"the pages tried to reach the internet: {outside[:5]}"
    conn = connect(db)
    rows = conn.execute("SELECT label, analyst, note FROM current_labels").fetchall()
    conn.close()
    assert rows == [("fraud", "ana", "card reported stolen")]


def test_label_retrain_promote_then_registry_and_kpis_show_it(tmp_path):
    """Label a handful in the queue, train from labels, promote; the registry (its CSV) and the
    KPI page show the new version and the confirmed fraud."""
    import pandas as pd

    db = tmp_path / "learn.duckdb"
    with streamlit_server(db, env={"CENTINELA_DEMO_ROWS": "20000", **admin_env("mia")}) as url, \
            chromium_page() as page:
        page.goto(url)
        sign_in(page, "mia")
        page.get_by_test_id("stMetric").filter(has_text="Rows").wait_for(timeout=180_000)
        page.get_by_role("link", name="KPI overview").click()
        page.get_by_test_id("stMetric").filter(has_text="Confirmed fraud amount").wait_for()
        assert metric_value(page, "Confirmed fraud") == "0"
        assert metric_value(page, "Backlog: unreviewed alerts") == "200"

        page.get_by_role("link", name="Alert queue").click()
        page.get_by_test_id("stMetric").filter(has_text="Alerts matching").wait_for()
        # The multiselect opens from its chevron; its first option is "Select all", then the alerts.
        # A rerun that lands while the list is open redraws the widget closed, so open it until it stays.
        unpicked = page.locator("[role=option][aria-selected=false]").filter(has_text="TX")
        for picked in range(3):  # the first unpicked alert, three times: the top three of the queue
            for _ in range(10):
                if unpicked.first.is_visible():
                    break
                page.locator("[class*='st-key-queue-pick'] button[aria-label='Open']").click()
                page.wait_for_timeout(500)
            unpicked.first.click()
            page.get_by_text(f"{picked + 1} selected.").wait_for()
        page.keyboard.press("Escape")
        form = page.get_by_test_id("stForm").filter(has_text="Close the cases")
        form.get_by_text("fraud", exact=True).click()
        form.get_by_role("button", name="Label 3 selected").click()
        page.get_by_text("Labelled 3 alerts as fraud.").wait_for()

        page.get_by_role("link", name="Models").click()
        page.get_by_role("tab", name="Train from labels").click()
        analysts_only = metric_value(page, "Fraud labels")
        page.get_by_text("Also learn from the dataset's label column").click()
        # The tick reruns the page: the label column's frauds are counted once it has run...
        page.wait_for_function(
            "([before]) => { const m = [...document.querySelectorAll('[data-testid=stMetric]')]"
            ".find(e => e.innerText.startsWith('Fraud labels'));"
            " const v = m && m.querySelector('[data-testid=stMetricValue]');"
            " return v && v.innerText.trim() !== before; }",
            arg=[analysts_only], timeout=120_000)
        # ... and the form it replaced may still be drawn for a while, marked stale: click the fresh one.
        train = fresh(page, page.get_by_role("button", name="Train a new version")).get_by_role(
            "button", name="Train a new version")
        train.click()
        page.get_by_text("Version #2 trained").wait_for(timeout=120_000)
        page.get_by_role("heading", name=f"Version #2: {DEFAULT_MODEL}").wait_for()
        page.get_by_role("button", name="Promote #2").click()
        page.get_by_text("#2 now ranks the queue (promoted by mia).").wait_for()
        page.get_by_text("This version ranks the queue.").wait_for()
        page.get_by_role("heading", name="Models").scroll_into_view_if_needed()
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOTS / "models.png"))
        registry = pd.read_csv(download(page, "Download the registry (CSV)")).set_index("version")
        assert list(registry.index) == [2, 1]
        assert bool(registry.loc[2, "active"]) and registry.loc[2, "kind"] == "supervised"
        assert registry.loc[2, "created_by"] == "mia" and registry.loc[2, "promoted_by"] == "mia"
        assert registry.loc[2, "analyst_labels"] == 3 and registry.loc[1, "created_by"] == "demo"

        page.get_by_role("link", name="KPI overview").click()
        page.get_by_test_id("stMetric").filter(has_text="Confirmed fraud amount").wait_for()
        assert metric_value(page, "Confirmed fraud") == "3"
        page.get_by_text("How these figures are counted").click()
        page.get_by_text(f"threshold of the active version (#2 {DEFAULT_MODEL}").wait_for()  # alerts now come from version 2
        page.get_by_role("heading", name="KPI overview").scroll_into_view_if_needed()
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOTS / "kpi.png"))

        # The admin's audit trail holds all of it, under mia.
        page.get_by_role("link", name="Users & audit").click()
        page.get_by_role("tab", name="Audit trail").click()
        page.get_by_text("The trail is append-only.").wait_for()
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOTS / "audit.png"))
        trail = pd.read_csv(download(page, "Download the audit trail (CSV)"))
        # Every click downloads, at once (Streamlit's deferred downloads hung on about 2 clicks in 7).
        for _ in range(4):
            assert pd.read_csv(download(page, "Download the audit trail (CSV)", attempts=1)).equals(trail)
        mine = trail[trail["actor"] == "mia"]
        assert {"login", "label", "retrain", "promote"} <= set(mine["action"]), trail[["actor", "action"]]
        assert set(trail.loc[trail["action"] == "generate", "actor"]) == {"demo"}


def test_a_manager_sees_kpis_with_masked_customers_and_no_queue(tmp_path):
    import pandas as pd

    from data.features import compute_features
    from data.synthetic import SyntheticConfig
    from detectors.runs import default_split

    db = tmp_path / "roles.duckdb"
    conn = connect(db)
    dataset = app_datasets.generate(as_user(conn), "bank", SyntheticConfig(rows=5_000, seed=1), features=False).dataset
    compute_features(conn, dataset)
    run = app_runs.fit(as_user(conn, "test"), dataset, ["isolation_forest"], train_until=default_split(dataset))
    top = conn.execute(f"SELECT transaction_id, customer_id FROM scores JOIN {dataset.table} USING (tx_row) "
                       "WHERE run_id = ? ORDER BY score DESC LIMIT 3", [run.id]).fetchall()
    app_labels.label(as_user(conn, "ana"), dataset, [t for t, _ in top], "fraud")
    app_users.add(as_user(conn, "test"), "ana", "a long test password", "admin")
    app_users.add(as_user(conn, "ana"), "rosa", "another long password", "manager")
    conn.close()
    with streamlit_server(db) as url, chromium_page() as page:
        page.goto(url)
        page.get_by_role("button", name="Sign in").wait_for()
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOTS / "sign-in.png"))
        sign_in(page, "rosa", "another long password")
        page.get_by_role("heading", name="KPI overview").wait_for()  # a manager lands on the KPIs
        assert metric_value(page, "Confirmed fraud") == "3"
        # The sidebar's page links are drawn after its other lines: wait for the link itself.
        page.get_by_test_id("stSidebarUserContent").get_by_role("link", name="KPI overview", exact=True).wait_for()
        page.get_by_test_id("stSidebarUserContent").get_by_text("Manager").first.wait_for()
        sidebar = page.get_by_test_id("stSidebarUserContent").inner_text()
        assert "KPI overview" in sidebar and "Manager" in sidebar
        for hidden in ("Alert queue", "Case", "Data", "Models", "Users & audit"):
            assert page.get_by_role("link", name=hidden, exact=True).count() == 0, hidden
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOTS / "manager.png"))
        confirmed = pd.read_csv(download(page, "Download confirmed fraud (CSV)"))
        assert len(confirmed) == 3 and confirmed["customer"].str.startswith("••••").all()
        assert not set(confirmed["customer"]) & {c for _, c in top}  # no raw identifier reaches a manager

        page.goto(f"{url}/queue")  # the queue's URL, typed in directly (still signed in)
        page.get_by_text("does not give access to this page").wait_for()
        assert page.get_by_test_id("stDataFrame").count() == 0 and page.get_by_test_id("stMetric").count() == 0
    conn = connect(db)
    actions = conn.execute("SELECT actor, action FROM audit WHERE action IN ('login', 'login_failed') ORDER BY id").fetchall()
    conn.close()
    assert actions == [("rosa", "login")]  # one sign-in: the typed URL kept the session
