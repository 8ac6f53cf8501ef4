"""End to end in Chromium: write a rule on the Rules page, backtest it (the chart shows), activate
it, find its alerts in the queue marked with its name, block a customer from a case, label it,
and read the rule's precision on the KPI overview."""

from __future__ import annotations

import pytest

from application import datasets as app_datasets
from application import rules as app_rules
from application import runs as app_runs
from data.db import connect
from data.synthetic import SyntheticConfig
from detectors.runs import default_split
from tests.browser import SCREENSHOTS, admin_env, chromium_page, metric_value, pick_option, sign_in, streamlit_server
from tests.conftest import as_user

pytestmark = pytest.mark.browser
NAME, CONDITION = "night_big", "amount > 3 * cust_mean_amount_7d AND hour < 6"


def test_write_backtest_activate_queue_block_label_and_kpi(tmp_path):
    db = tmp_path / "rules.duckdb"
    conn = connect(db)
    ctx = as_user(conn)
    dataset = app_datasets.generate(ctx, "bank", SyntheticConfig(rows=20_000, seed=3, days=45)).dataset
    app_runs.fit(ctx, dataset, ["isolation_forest"], train_until=default_split(dataset))
    hits = app_rules.backtest(ctx, dataset, condition=CONDITION).summary["hits"]
    conn.close()
    assert hits > 0

    with streamlit_server(db, env=admin_env()) as url, chromium_page() as page:
        page.goto(url)
        sign_in(page)
        page.get_by_role("link", name="Rules").click()
        page.get_by_text("Write a rule").first.wait_for()
        page.get_by_label("Rule name").fill(NAME)
        condition = page.get_by_label("Condition")
        condition.fill(CONDITION)
        condition.press("Control+Enter")  # a text area commits its value on Ctrl+Enter (or on leaving it)
        page.get_by_text("The condition is accepted.").wait_for()
        page.get_by_role("button", name="Backtest", exact=True).click()
        page.get_by_text("Hits per day").wait_for()
        assert metric_value(page, "Hits") == f"{hits:,}"
        page.wait_for_timeout(800)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "rules.png"), full_page=True)
        page.get_by_role("button", name="Save as draft").click()
        page.get_by_text(f"Rule '{NAME}' saved as a draft").wait_for()
        page.get_by_role("button", name="Activate").click()
        page.get_by_text(f"Rule '{NAME}' is now active").wait_for()

        page.get_by_role("link", name="Alert queue").click()
        page.get_by_test_id("stMetric").filter(has_text="Alerts matching").wait_for()
        page.get_by_text("Besides the model: 1 alert rule(s) in force.").wait_for()
        page.get_by_test_id("stExpander").filter(has_text="Filters").locator("summary").click()
        pick_option(page, page.locator("[class*='st-key-qf-source'] [role=combobox]"), NAME)
        page.get_by_role("button", name="Apply filters").click()
        page.get_by_text(f"raised by {NAME}").wait_for()
        assert metric_value(page, "Alerts matching") == f"{hits:,}"
        # The case picker names what raised each alert: the rule's name.
        picked = page.locator("[class*='st-key-queue-open'] input[role=combobox]").input_value()
        assert f"rule {NAME}" in picked, picked
        page.get_by_role("button", name="Open case").click()
        page.get_by_role("heading", name="Case TX").wait_for()
        page.get_by_text("Rules and lists").wait_for()
        page.get_by_role("button", name="Block this customer").click()
        page.get_by_text("is on list blocked_customers (block).").wait_for()
        form = page.get_by_test_id("stForm").filter(has_text="Label this case")
        form.get_by_text("fraud", exact=True).click()
        form.get_by_role("button", name="Save label").click()
        page.get_by_text("as fraud.").wait_for()

        page.get_by_role("link", name="Lists").click()
        page.get_by_text("block list of customer_id, 1 entries in effect").wait_for()
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOTS / "lists.png"), full_page=True)

        page.get_by_role("link", name="KPI overview").click()
        page.get_by_test_id("stMetric").filter(has_text=f"Precision of {NAME}").wait_for()
        assert metric_value(page, f"Precision of {NAME}") == "100.0%"

    conn = connect(db)
    assert conn.execute("SELECT label FROM current_labels").fetchall() == [("fraud",)]
    assert conn.execute("SELECT count(*) FROM current_list_entries").fetchall()[0][0] == 1
    conn.close()
