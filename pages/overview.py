"""KPI overview for managers: volumes, alerts, confirmed fraud and how the team keeps up."""

from __future__ import annotations

import streamlit as st

from application import kpis, rules
from dashboard import charts
from dashboard.cached import kpi_totals_reader
from dashboard.formatting import fmt_hours, fmt_int, fmt_pct, fmt_pen, fmt_pen_short
from dashboard.investigation import require_run
from dashboard.live import live_updates
from dashboard.shell import dataset_page
from data.export import safe_csv
from data.kpi import GROUPINGS, available_groupings

BREAKDOWN_ROWS = 50

ctx, dataset = dataset_page("KPI overview")
run = require_run(ctx, dataset).run
totals_reader = kpi_totals_reader(run)  # the scan of every transaction, kept (dashboard.cached)
live_updates(dataset, "overview")

first, last = dataset.min_ts.date(), dataset.max_ts.date()
left, right = st.columns([2, 1])
period = left.date_input("Transactions from / to", (first, last), min_value=first, max_value=last, key="kpi-period",
                         help="Both days included.")
# While a range is being picked the widget holds one day; cleared, none.
start, end = (period[0], period[-1]) if period else (first, last)
step = right.radio("Trend per", ["day", "week"], horizontal=True, key="kpi-step")

overview = kpis.overview(ctx, dataset, start, end, step, totals_reader)
summary = overview.summary
if not summary["transactions"]:
    st.info(f"No transactions from {start} to {end}. Choose a wider period.")
    st.stop()
row1 = st.columns(4)
row1[0].metric("Transactions", fmt_int(summary["transactions"]))
row1[1].metric("Amount processed", fmt_pen_short(summary["amount"]), help=fmt_pen(summary["amount"]))
row1[2].metric("Alerts", fmt_int(summary["alerts"]), help=f"Scored at or above the threshold of {run.label}.")
row1[3].metric("Alert rate", fmt_pct(summary["alert_rate"]))
row2 = st.columns(4)
row2[0].metric("Confirmed fraud", fmt_int(summary["confirmed_fraud"]), help="Transactions an analyst labelled fraud.")
row2[1].metric("Confirmed fraud amount", fmt_pen_short(summary["confirmed_fraud_amount"]),
               help=fmt_pen(summary["confirmed_fraud_amount"]))
row2[2].metric("Precision of reviewed alerts", fmt_pct(summary["reviewed_precision"], 1),
               help=f"Of {fmt_int(summary['reviewed_alerts'])} alerts labelled fraud or legitimate, the share that was fraud.")
row2[3].metric("Mean time to decision", fmt_hours(summary["mean_hours_to_decision"]),
               help="From when an alert could first be seen (the later of the transaction and its import) "
                    "to its first fraud/legitimate label.")
row3 = st.columns(4)
row3[0].metric("Backlog: unreviewed alerts", fmt_int(summary["backlog"]), help="Alerts with no label whose case is not closed.")
oldest, mean_age = summary["backlog_oldest_days"], summary["backlog_mean_age_days"]
row3[1].metric("Oldest unreviewed alert waiting", fmt_hours(None if oldest is None else oldest * 24))
row3[2].metric("Mean backlog wait", fmt_hours(None if mean_age is None else mean_age * 24))

trend = overview.trend
st.plotly_chart(charts.kpi_trend(trend, step), key="kpi-trend")

groupings = [g for g in available_groupings(dataset) if g not in ("day", "week")]
view = st.selectbox("Break down by", [step, *groupings], format_func=GROUPINGS.get, key="kpi-by")
table = trend if view == step else kpis.breakdown(ctx, dataset, view, start, end, limit=BREAKDOWN_ROWS,
                                                                totals_reader=totals_reader)
shown = table.rename(columns={"key": GROUPINGS[view].lower()})
period_key = {GROUPINGS[view].lower(): st.column_config.DateColumn(GROUPINGS[view], format="YYYY-MM-DD")} \
    if view in ("day", "week") else {}
st.dataframe(shown, hide_index=True, column_config={
    **period_key,
    "alert_rate": st.column_config.NumberColumn("alert rate", format="percent"),
    "reviewed_precision": st.column_config.NumberColumn("precision (reviewed)", format="percent"),
    "amount": st.column_config.NumberColumn("amount (PEN)", format="%.2f"),
    "confirmed_fraud_amount": st.column_config.NumberColumn("confirmed fraud (PEN)", format="%.2f"),
    **{c: st.column_config.NumberColumn(c.replace("_", " "), format="%.1f")
       for c in ("backlog_mean_age_days", "backlog_oldest_days", "mean_hours_to_decision")},
})
if view not in ("day", "week") and len(table) == BREAKDOWN_ROWS:
    st.caption(f"The {BREAKDOWN_ROWS} with the most transactions.")
st.download_button("Download this table (CSV)", safe_csv(shown), icon=":material/download:",
                   file_name=f"{dataset.name}-kpi-by-{view}-{start}-{end}.csv")

st.subheader("Rules")
rule_table, skipped = rules.kpis(ctx, dataset, start, end, statuses=("active", "shadow"))
if rule_table.empty:
    st.caption("No active or shadow rules.")
else:
    st.dataframe(rule_table, hide_index=True, key="kpi-rules", column_config={
        "precision": st.column_config.NumberColumn("precision (labels)", format="percent",
                                                   help="Hits labelled fraud ÷ hits labelled fraud or legitimate"),
        "label_precision": st.column_config.NumberColumn("precision (label column)", format="percent"),
        "alerts": st.column_config.NumberColumn("alerts (hits)")})
    st.caption("Each rule's hits in the period and how analysts labelled them; shadow rules raise no alerts.")
    shown_rules = rule_table.head(4)
    for column, r in zip(st.columns(4), shown_rules.itertuples(), strict=False):
        column.metric(f"Precision of {r.rule}", fmt_pct(None if r.precision != r.precision else r.precision, 1),
                      help=f"{fmt_int(r.confirmed_fraud)} confirmed fraud of {fmt_int(r.reviewed)} reviewed, among "
                           f"{fmt_int(r.alerts)} alerts")
for name, reason in skipped.items():
    st.warning(f"Rule {name!r} is not evaluated: {reason}")

st.subheader("Confirmed fraud")
cases = kpis.confirmed_fraud(ctx, dataset, start, end)
if cases.empty:
    st.caption("No transaction in this period has been confirmed as fraud yet.")
else:
    st.caption("Latest first; customer identifiers are masked.")
    st.dataframe(cases, hide_index=True, column_config={"amount": st.column_config.NumberColumn("amount (PEN)", format="%.2f")})
    st.download_button("Download confirmed fraud (CSV)", safe_csv(cases), icon=":material/download:",
                       file_name=f"{dataset.name}-confirmed-fraud-{start}-{end}.csv")
with st.expander("How these figures are counted"):
    st.markdown(
        f"- **Alert**: a transaction scored at or above the threshold of the active version ({run.label}).\n"
        "- **Confirmed fraud**: its current analyst label is fraud (alert or not); undone labels do not count.\n"
        "- **Precision of reviewed alerts**: alerts labelled fraud ÷ alerts labelled fraud or legitimate ('unsure' is not a decision).\n"
        "- **Backlog**: alerts with no label whose case is not closed; an alert waits from the later of its transaction "
        "time and when its dataset was loaded.\n"
        "- **Time to decision**: from that moment to the first fraud/legitimate label not undone.")
