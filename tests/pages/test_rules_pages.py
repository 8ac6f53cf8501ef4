"""The Rules and Lists pages, and rules on the queue, case and KPI pages, through AppTest."""

from __future__ import annotations

import pytest

from application import lists as app_lists
from application import rules as app_rules
from application import runs as app_runs
from data.lists import current_entries, get_list
from data.rules import get_rule
from detectors.runs import default_split
from tests.apptest import metric, one, open_queue_filters, page, texts
from tests.conftest import as_user

pytestmark = pytest.mark.usefixtures("server_like_navigation")
NIGHT = "amount > 3 * cust_mean_amount_7d AND hour < 6"


@pytest.fixture
def fitted(conn, small_dataset):
    app_runs.fit(as_user(conn, "test"), small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    return small_dataset




def test_write_check_backtest_save_and_activate_a_rule(conn, fitted):
    at = page("pages/rules.py")
    at.text_area(key="rule-condition").input("amout > 1").run()
    assert "unknown column `amout` — did you mean `amount`?" in texts(at)
    at.text_input(key="rule-name").input("night_big")
    at.text_area(key="rule-condition").input(NIGHT).run()
    assert "The condition is accepted." in texts(at)
    one(at.button, "Backtest").click()
    at.run()
    assert not at.exception
    expected = app_rules.backtest(as_user(conn), fitted, condition=NIGHT).summary
    assert metric(at, "Hits") == f"{expected['hits']:,}"
    assert any("Hits per day" in c.proto.spec for c in at.get("plotly_chart"))
    one(at.button, "Save as draft").click()
    at.run()
    assert get_rule(conn, fitted, "night_big").status == "draft"
    one(at.button, "Activate").click()
    at.run()
    assert not at.exception
    assert get_rule(conn, fitted, "night_big").status == "active"


def test_an_analyst_drafts_but_cannot_activate(conn, fitted):
    from application import users

    users.add(as_user(conn, "admin"), "ana", "a long test password", "analyst")
    app_rules.add(as_user(conn, "ana"), fitted, "night_big", NIGHT)  # an analyst may draft
    at = page("pages/rules.py", role="analyst")
    assert one(at.button, "Activate").disabled


def test_queue_marks_rule_alerts_and_filters_by_rule(conn, fitted):
    ctx = as_user(conn)
    app_rules.add(ctx, fitted, "night_big", NIGHT)
    app_rules.set_status(ctx, fitted, "night_big", "active")
    at = page("pages/queue.py")
    hits = app_rules.backtest(ctx, fitted, name="night_big").summary["hits"]
    open_queue_filters(at)
    at.selectbox(key="qf-source-0").set_value("night_big")
    one(at.button, "Apply filters").click()
    at.run()
    assert not at.exception
    assert int(metric(at, "Alerts matching").replace(",", "")) == hits
    assert all("rule night_big" in why for why in at.dataframe[0].value["why"])


def test_block_a_customer_from_the_case_view(conn, fitted):
    ctx = as_user(conn)
    app_rules.add(ctx, fitted, "night_big", NIGHT)
    app_rules.set_status(ctx, fitted, "night_big", "active")
    case_id, customer = conn.execute(f"SELECT transaction_id, customer_id FROM {fitted.table} ORDER BY tx_row LIMIT 1"
                                     ).fetchall()[0]
    at = page("pages/case.py", case=case_id)
    one(at.button, "Block this customer").click()
    at.run()
    assert not at.exception
    blocked = get_list(conn, fitted, "blocked_customers", ctx.clock())
    assert list(current_entries(conn, blocked, ctx.clock())["value"]) == [customer]
    at.run()
    assert any("blocked_customers" in str(d.value.get("list", "")) for d in at.dataframe if "list" in d.value.columns)


def test_lists_page_adds_and_removes_an_entry(conn, fitted):
    app_lists.create(as_user(conn), fitted, "vip_customers", "allow", "customer_id")
    at = page("pages/lists.py")
    inputs = [t for t in at.text_input if t.label.startswith("Value of")]
    inputs[0].input("C0000001")
    one(at.text_input, "Reason").input("known VIP")
    one(at.button, "Add").click()
    at.run()
    assert not at.exception
    vip = get_list(conn, fitted, "vip_customers", as_user(conn).clock())
    assert list(current_entries(conn, vip, as_user(conn).clock())["value"]) == ["C0000001"]
    one(at.button, "Remove").click()
    at.run()
    assert current_entries(conn, vip, as_user(conn).clock()).empty


def test_kpi_overview_shows_each_rules_precision(conn, fitted):
    from application import labels

    ctx = as_user(conn)
    app_rules.add(ctx, fitted, "night_big", NIGHT)
    app_rules.set_status(ctx, fitted, "night_big", "active")
    hit = conn.execute(f"SELECT transaction_id FROM {fitted.table} t JOIN feat_{fitted.id} f USING (tx_row) "
                       "WHERE t.amount > 3 * f.cust_mean_amount_7d AND f.hour < 6 ORDER BY tx_row LIMIT 2").fetchall()
    labels.label(ctx, fitted, [hit[0][0]], "fraud")
    labels.label(ctx, fitted, [hit[1][0]], "legitimate")
    at = page("pages/overview.py", role="manager")
    table = next(d.value for d in at.dataframe if "rule" in d.value.columns)
    row = table.set_index("rule").loc["night_big"]
    assert row["reviewed"] == 2 and row["confirmed_fraud"] == 1 and row["precision"] == 0.5


def test_suggested_rules_are_listed_and_adopted_as_drafts(conn, fitted):
    at = page("pages/rules.py")
    one(at.button, "Suggest rules").click()
    at.run()
    assert not at.exception, at.exception
    adopt = [b for b in at.button if b.label == "Adopt"]
    assert adopt, texts(at)
    proposed = [c.value for c in at.code]  # the suggestions' conditions, as the page shows them
    adopt[0].click()
    at.run()
    assert not at.exception
    drafted = get_rule(conn, fitted, "suggested_1")
    assert drafted.status == "draft" and drafted.condition in proposed
