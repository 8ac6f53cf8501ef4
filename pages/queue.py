"""Alert queue: the active run's alerts, filtered and paged in DuckDB; open a case or act on several."""

from __future__ import annotations

import streamlit as st

from application import cases, labels, rules
from application.queue import queue_page
from dashboard.actions import act
from dashboard.cached import labelled_cases_csv, queue_filter_choices, warm_explainer
from dashboard.formatting import fmt_int, fmt_pct
from dashboard.investigation import require_run, undo_box
from dashboard.live import live_updates
from dashboard.navigation import switch_to
from dashboard.shell import dataset_page
from dashboard.state import queue_filters, queue_filters_version, set_queue_filters
from data.alerts import LABEL_STATUSES, ORDER_TITLES, ORDERS, PAGE_SIZES, WEEKDAYS, QueueFilters
from data.cases import LABELS, STATUS_TITLES, STATUSES
from data.export import safe_csv

ctx, dataset = dataset_page("Alert queue")
active = require_run(ctx, dataset)
run, threshold = active.run, active.threshold
live_updates(dataset, "queue")
warm_explainer(dataset.id, run)  # the first case opened then shows its SHAP chart at once
analyst = ctx.actor
in_force = rules.sources(ctx, dataset)  # active rules and lists: they add to the model's alerts, or suppress them
filters = queue_filters()
version = queue_filters_version()


# --- filters ------------------------------------------------------------------------------
def filter_form() -> None:
    """The filters as a form: applied (and kept in the session) when the analyst presses Apply."""
    lo, hi = dataset.min_ts.date(), dataset.max_ts.date()

    def value(name: str):
        return st.session_state[f"qf-{name}-{version}"]

    def apply_filters() -> None:
        # A callback runs before the page does: the run that follows the click already shows the
        # filtered alerts (applying in the page's body and rerunning cost a whole run more).
        dates = value("dates")
        start, end = (tuple(dates) + (None, None))[:2] if isinstance(dates, (list, tuple)) else (dates, None)
        set_queue_filters(QueueFilters(
            start=start if start != lo else None, end=end if end != hi else None, cities=tuple(value("city")),
            merchants=tuple(value("merchant")), payment_methods=tuple(value("payment")), amount_min=value("amin"),
            amount_max=value("amax"), label_status=value("label"), case_statuses=tuple(value("status")),
            assignee=analyst if value("mine") else None, hours=tuple(value("hours")),
            weekdays=tuple(value("weekdays")), search=value("search"), source=value("source")))

    with st.form(f"queue-filters-{version}", border=False):
        c1, c2, c3 = st.columns(3)
        c1.date_input("Dates", value=(filters.start or lo, filters.end or hi), min_value=lo, max_value=hi,
                      key=f"qf-dates-{version}")
        c2.multiselect("City", queue_filter_choices(dataset, run, threshold, "city"), default=list(filters.cities),
                       key=f"qf-city-{version}", accept_new_options=True)
        merchant_column = "merchant_name" if dataset.has_column("merchant_name") else "merchant_id"
        c3.multiselect("Merchant", queue_filter_choices(dataset, run, threshold, merchant_column),
                       default=list(filters.merchants), key=f"qf-merchant-{version}", accept_new_options=True)
        c4, c5, c6 = st.columns(3)
        c4.multiselect("Payment method", queue_filter_choices(dataset, run, threshold, "payment_method"),
                       default=list(filters.payment_methods), key=f"qf-payment-{version}",
                       disabled=not dataset.has_column("payment_method"), accept_new_options=True)
        c5.number_input("Amount from (PEN)", min_value=0.0, value=filters.amount_min, key=f"qf-amin-{version}")
        c6.number_input("Amount up to (PEN)", min_value=0.0, value=filters.amount_max, key=f"qf-amax-{version}")
        c7, c8, c9 = st.columns(3)
        c7.selectbox("Label", LABEL_STATUSES, index=LABEL_STATUSES.index(filters.label_status), key=f"qf-label-{version}")
        c8.multiselect("Case status", STATUSES, default=list(filters.case_statuses), format_func=STATUS_TITLES.get,
                       key=f"qf-status-{version}")
        c9.checkbox("Only my cases", value=bool(filters.assignee), key=f"qf-mine-{version}", help="Cases assigned to you.")
        c10, c11, c12 = st.columns(3)
        c10.multiselect("Hours", list(range(24)), default=list(filters.hours), format_func=lambda h: f"{h:02d}:00",
                        key=f"qf-hours-{version}")
        c11.multiselect("Weekdays", list(range(1, 8)), default=list(filters.weekdays),
                        format_func=lambda d: WEEKDAYS[d - 1], key=f"qf-weekdays-{version}")
        c12.text_input("Search ids", value=filters.search, max_chars=100, key=f"qf-search-{version}",
                       placeholder="transaction, customer or merchant id")
        raisers = ["model", *in_force.rule_names, *(f"list:{rl.name}" for rl in in_force.block_lists)]
        if filters.source and filters.source not in raisers:
            raisers.append(filters.source)
        st.selectbox("Raised by", raisers, index=raisers.index(filters.source) if filters.source else None,
                     key=f"qf-source-{version}", placeholder="the model, any rule or list",
                     help="Alerts the model raised, or those an active rule or a block list raised.")
        apply, clear = st.columns([1, 5])
        apply.form_submit_button("Apply filters", type="primary", on_click=apply_filters)
        clear.form_submit_button("Clear filters", on_click=set_queue_filters, args=(QueueFilters(),))


# Drawn only while open (the expander reruns the page when toggled): a closed one costs neither the
# three scans behind its pickers nor, on an analyst's first visit, the browser's fetch of the picker
# widget's script (measured under live load: 0.9 s first visits, 0.4 s again).
with st.expander("Filters" + (f" ({len(filters.describe())} active)" if filters.describe() else ""),
                 expanded=bool(filters.describe()), icon=":material/filter_list:", key="queue-filters-open",
                 on_change="rerun") as filter_box:
    if filter_box.open:
        filter_form()

# --- one page of alerts -------------------------------------------------------------------
top_left, top_mid, top_right = st.columns([2, 1, 1])
order = top_mid.selectbox("Order", list(ORDERS), format_func=ORDER_TITLES.get, key="queue-order",
                          help="'Least certain first' lists the unlabelled alerts nearest the model's decision point: "
                               "labelling those teaches a retrained model the most.")
page_size = top_right.selectbox("Rows per page", PAGE_SIZES, index=1, key="queue-page-size")
# The page picker's range needs the count, which comes with the page: read the page the picker
# holds (a widget's value is in session state before it is drawn), then draw the picker.
page_key = f"queue-page-{version}-{order}-{page_size}"
shown_page = queue_page(ctx, dataset, filters, order=order, page=st.session_state.get(page_key, 1) - 1,
                        page_size=page_size, sources=in_force)
total, pages = shown_page.total, shown_page.pages
if st.session_state.get(page_key, 1) > pages:  # fewer alerts match now (some were labelled): show the last page
    st.session_state[page_key] = pages
    shown_page = queue_page(ctx, dataset, filters, order=order, page=pages - 1, page_size=page_size, sources=in_force)
page_number = top_left.number_input(f"Page (of {pages:,})", min_value=1, max_value=pages, value=1, step=1, key=page_key)
rows = shown_page.rows

m1, m2, m3 = st.columns(3)
m1.metric("Alerts matching", fmt_int(total))
m2.metric("Threshold", f"{threshold:.4f}", help=f"Run #{run.id} ({run.detector}) at contamination {fmt_pct(run.contamination)}: "
          "the top share of transactions by score are alerts. Change it on Detect & tune.")
m3.metric("Unlabelled on this page", fmt_int(int(rows["label"].isna().sum())) if len(rows) else "0")
if filters.describe():
    st.caption("Filtered by " + "; ".join(filters.describe()) + ".")
if not in_force.empty:
    parts = [f"{len(in_force.alert_rules)} alert rule(s)", f"{len(in_force.allow_rules)} allow rule(s)",
             f"{len(in_force.block_lists)} block list(s)", f"{len(in_force.allow_lists)} allow list(s)"]
    st.caption("Besides the model: " + ", ".join(p for p in parts if not p.startswith("0 ")) + " in force.")
for name, reason in in_force.skipped.items():
    st.warning(f"Active rule {name!r} is not evaluated: {reason}", icon=":material/warning:")


def labelled_download() -> None:
    count, csv = labelled_cases_csv(dataset, run)
    st.download_button(f"Download all {count:,} labelled cases (CSV)", csv,
                       file_name=f"{dataset.name}-labelled-cases.csv", icon=":material/download:",
                       disabled=not count, key="queue-labelled-download",
                       help="Current label, analyst, note, case status and score of every labelled transaction. "
                            "Cells a spreadsheet would run as formulas are prefixed with an apostrophe.")


if rows.empty:
    labelled_download()
    st.info("No alerts match these filters." if filters.describe() else "This run has no alerts.")
    st.stop()

shown = rows.drop(columns=["tx_row", "by_model", "rules", "lists"])
for column in ("label", "labelled_by", "assignee"):  # not labelled / not assigned: blank, not the word "None"
    if column in shown.columns:
        shown[column] = shown[column].astype(object).where(shown[column].notna(), "")
first = ["transaction_id", "ts", "amount", "score", "why", "label", "status", "assignee"]  # what triage reads first
table = st.dataframe(
    shown, hide_index=True, on_select="rerun", selection_mode="multi-row", key=f"queue-table-{version}-{page_number}",
    column_order=first + [c for c in shown.columns if c not in first],
    column_config={
        "transaction_id": st.column_config.TextColumn("Transaction"),
        "ts": st.column_config.DatetimeColumn("When", format="YYYY-MM-DD HH:mm"),
        "amount": st.column_config.NumberColumn("Amount", format="S/ %.2f"),
        "score": st.column_config.NumberColumn("Score", format="%.4f"),
        "status": st.column_config.TextColumn("Case status"),
        "customer_id": "Customer", "merchant_id": "Merchant", "merchant_name": "Merchant name", "city": "City",
        "payment_method": "Payment", "channel": "Channel", "label": "Label", "labelled_by": "Labelled by",
        "assignee": "Assignee", "why": st.column_config.TextColumn("Why", help="What raised the alert: the model's "
                                                                      "score, active rules, block lists"),
    },
)
picked = [shown.iloc[i]["transaction_id"] for i in table.selection.rows] if table and table.selection else []
# CSVs are made when the button is clicked (deferred), not on every rerun of the page.
st.download_button("Download this page (CSV)", safe_csv(shown), file_name=f"{dataset.name}-alerts-page-{page_number}.csv",
                   icon=":material/download:")

# --- open one case ------------------------------------------------------------------------
ids = list(shown["transaction_id"])
with st.container(border=True):
    st.markdown("**Open a case**")
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    # One label per alert, made once (a lookup per option scanned the page once per row).
    titles = {tx: f"{tx} · S/ {amount:,.2f} · {why}" for tx, amount, why in zip(ids, shown["amount"], shown["why"], strict=True)}
    choice = left.selectbox("Alert", ids, index=ids.index(picked[0]) if picked else 0, key=f"queue-open-{version}-{page_number}",
                            format_func=titles.__getitem__)
    if right.button("Open case", type="primary", icon=":material/open_in_new:"):
        switch_to("case", case=choice, dataset=dataset.name)

# --- act on several -----------------------------------------------------------------------
with st.container(border=True):
    st.markdown("**Act on several alerts**")
    extra = st.multiselect("Alerts (rows ticked in the table are included)", ids, key=f"queue-pick-{version}-{page_number}")
    selected = list(dict.fromkeys(picked + extra))
    st.caption(f"{len(selected)} selected." if selected else "Tick rows in the table or pick alerts above.")
    with st.form("bulk-label", border=False):
        b1, b2, b3 = st.columns([2, 3, 2])
        label = b1.radio("Label", LABELS, horizontal=True, key="bulk-label-choice")
        note = b2.text_input("Note (optional)", max_chars=2000, key="bulk-note")
        close = b3.checkbox("Close the cases", value=True, help="Fraud closes as confirmed fraud, legitimate as a false positive.")
        if st.form_submit_button(f"Label {len(selected) or ''} selected".replace("  ", " "), disabled=not selected):
            act(lambda c: labels.label(c, dataset, selected, label, note=note, close=close),
                f"Labelled {len(selected):,} alert{'s' if len(selected) != 1 else ''} as {label}.")
    a1, a2, a3 = st.columns([1, 2, 1], vertical_alignment="bottom")
    if a1.button("Take selected", disabled=not selected, help="Assign them to yourself and mark them in review"):
        act(lambda c: cases.take(c, dataset, selected),
            f"{len(selected):,} case{'s' if len(selected) != 1 else ''} assigned to {analyst}.")
    assignee = a2.selectbox("Assign to", cases.analysts(ctx, dataset), index=None, accept_new_options=True,
                            key="bulk-assignee", placeholder="choose or type a name")
    if a3.button("Assign selected", disabled=not (selected and assignee)):
        act(lambda c: cases.change(c, dataset, selected, assignee=assignee),
            f"{len(selected):,} case{'s' if len(selected) != 1 else ''} assigned to {assignee}.")
undo_box(ctx, dataset, key="queue-undo")
labelled_download()
