"""Case: one transaction, why it was flagged (SHAP), its customer, merchant and places; label it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import investigation_charts as charts
from dashboard.cached import run_explainer, score_rank
from dashboard.connection import get_cursor
from dashboard.formatting import fmt_pen, fmt_ts
from dashboard.investigation import act, assignee_choices, feature_descriptions, require_run, undo_box
from dashboard.maps import case_path_map
from dashboard.shell import page_setup
from dashboard.state import active_dataset, current_analyst, show_flashes
from data.alerts import (
    alert_page,
    customer_devices_and_places,
    customer_history,
    merchant_activity,
    transaction_detail,
    usual_location,
)
from data.cases import (
    CLOSE_REASONS,
    LABELS,
    STATUS_TITLES,
    STATUSES,
    add_labels,
    case_history,
    case_state,
    current_labels,
    label_history,
    take_cases,
    update_cases,
)
from data.db import fetch_one
from data.errors import DataError
from detectors.explain import explain_case, explained_output

page_setup()
conn = get_cursor()
dataset = active_dataset(conn)
show_flashes()
if dataset is None:
    st.title("Case")
    st.info("There is no dataset yet. Generate or import one on the Data page.")
    st.stop()
run, threshold = require_run(conn, dataset)
analyst = current_analyst()

case_id = st.query_params.get("case")
if not case_id:
    st.title("Case")
    st.info("No case is open. Pick one in the alert queue, or open one of the top alerts here.")
    top = alert_page(conn, dataset, run.id, threshold, page_size=20)
    if top.empty:
        st.stop()
    choice = st.selectbox("Top alerts", list(top["transaction_id"]), key="case-pick")
    if st.button("Open case", type="primary"):
        st.query_params["case"] = choice
        st.rerun()
    st.page_link("pages/queue.py", label="Go to the alert queue", icon=":material/notifications:")
    st.stop()

detail = transaction_detail(conn, dataset, case_id)
if detail is None:
    st.title("Case")
    st.error(f"Transaction {case_id!r} is not in dataset {dataset.name!r}.")
    st.page_link("pages/queue.py", label="Back to the alert queue", icon=":material/arrow_back:")
    st.stop()

tx_row = int(detail["tx_row"])
score_row = fetch_one(conn, "SELECT score FROM scores WHERE run_id = ? AND tx_row = ?", [run.id, tx_row])
score = float(score_row[0]) if score_row else None
state = case_state(conn, dataset, case_id)
label = current_labels(conn, dataset, [case_id]).get(case_id)

st.title(f"Case {case_id}")
st.caption(f"{fmt_ts(detail['ts'])} · {detail.get('merchant_name') or detail.get('merchant_id') or ''} · "
           f"{detail.get('city') or ''} · run #{run.id} ({run.detector})")
m1, m2, m3, m4 = st.columns(4)
m1.metric("Amount", fmt_pen(detail["amount"]))
if score is not None:
    rank, scored = score_rank(run.id, score)
    m2.metric("Score", f"{score:.4f}", help=f"Threshold {threshold:.4f}; higher = more anomalous.",
              delta=f"rank {rank:,} of {scored:,}", delta_color="off")
m3.metric("Case status", STATUS_TITLES[state["status"]] + (f" ({state['reason']})" if state["reason"] else ""))
m4.metric("Label", label or "none", help=f"Assigned to {state['assignee']}" if state["assignee"] else "Unassigned")
if score is not None and score < threshold:
    st.warning("This transaction is below the run's threshold: it is not an alert at the current contamination.")

explain_col, act_col = st.columns([3, 2], gap="large")

# --- why it was flagged -------------------------------------------------------------------
with explain_col:
    try:
        with st.spinner("Computing SHAP attributions…"):
            explanation = explain_case(conn, dataset, run.id, tx_row,
                                       explainer_factory=lambda: run_explainer(dataset.id, run))
    except (DataError, ValueError) as exc:
        st.error(f"Could not explain this case: {exc}")
    else:
        describe = feature_descriptions()
        attributions = explanation["attributions"]
        st.plotly_chart(charts.attribution_waterfall(attributions, explanation["base_value"], explanation["output"],
                                                     describe), key="case-shap")
        total = float(attributions["value"].sum())
        st.caption(f"SHAP ({explanation['method']} explainer) explains {explained_output(explanation['method'])}. "
                   f"Usual {explanation['base_value']:.4f} {'+' if total >= 0 else '−'} attributions {abs(total):.4f} "
                   f"= this transaction's {explanation['output']:.4f}."
                   + (" Stored with the run." if explanation["cached"] else f" Computed in {explanation['seconds']:.2f} s."))
        table = attributions.assign(
            description=[describe.get(f, (f, ""))[0] for f in attributions["feature"]],
            unit=[describe.get(f, ("", ""))[1] for f in attributions["feature"]],
            direction=["toward suspicious" if v > 0 else "toward normal" if v < 0 else "none" for v in attributions["value"]],
        ).sort_values("value", ascending=False, key=abs)
        with st.expander("All attributions"):
            st.dataframe(table[["description", "raw", "unit", "value", "direction", "feature"]], hide_index=True,
                         column_config={"value": st.column_config.NumberColumn("attribution", format="%+.4f"),
                                        "raw": st.column_config.TextColumn("value")})

# --- label and workflow -------------------------------------------------------------------
with act_col:
    with st.form("case-label"):
        st.markdown("**Label this case**")
        choice = st.radio("Label", LABELS, horizontal=True, index=LABELS.index(label) if label in LABELS else None,
                          key="case-label-choice")
        note = st.text_area("Note (optional)", max_chars=2000, key="case-note", height=80)
        close = st.checkbox("Close the case", value=True, help="Fraud closes as confirmed fraud, legitimate as a false positive.")
        if st.form_submit_button("Save label", type="primary"):
            if choice is None:
                st.error("Choose a label first.")
            else:
                act(lambda: add_labels(conn, dataset, [case_id], choice, analyst, note, close=close),
                    f"Labelled {case_id} as {choice}.")
    undo_box(conn, dataset, analyst, key="case-undo")

    with st.container(border=True):
        st.markdown("**Workflow**")
        w1, w2 = st.columns(2, vertical_alignment="bottom")
        if w1.button("Take this case", disabled=state["assignee"] == analyst and state["status"] == "in_review",
                     help="Assign it to yourself and mark it in review"):
            act(lambda: take_cases(conn, dataset, [case_id], analyst), f"{case_id} is now yours, in review.")
        assignee = w2.selectbox("Assign to", assignee_choices(conn, dataset, analyst), index=None, accept_new_options=True, key="case-assignee",
                                placeholder="choose or type a name")
        if assignee and st.button(f"Assign to {assignee}", key="case-assign"):
            act(lambda: update_cases(conn, dataset, [case_id], analyst, assignee=assignee),
                f"{case_id} assigned to {assignee}.")
        s1, s2 = st.columns(2)
        status = s1.selectbox("Status", STATUSES, index=STATUSES.index(state["status"]), format_func=STATUS_TITLES.get,
                              key="case-status")
        reason = s2.selectbox("Reason (to close)", CLOSE_REASONS, index=None, key="case-reason", disabled=status != "closed")
        if st.button("Update status", key="case-update-status", disabled=status == state["status"]):
            act(lambda: update_cases(conn, dataset, [case_id], analyst, status=status, reason=reason),
                f"{case_id} is now {STATUS_TITLES[status].lower()}.")

    history_labels, history_case = st.tabs(["Label history", "Case history"])
    with history_labels:
        labels_so_far = label_history(conn, dataset, case_id)
        st.dataframe(labels_so_far, hide_index=True) if not labels_so_far.empty else st.caption("No labels yet.")
    with history_case:
        events = case_history(conn, dataset, case_id)
        st.dataframe(events, hide_index=True) if not events.empty else st.caption("Untouched: open and unassigned.")

# --- surroundings -------------------------------------------------------------------------
customer = detail.get("customer_id")
tab_customer, tab_merchant, tab_place, tab_detail = st.tabs(["Customer history", "Merchant", "Location", "All fields"])
with tab_customer:
    if not customer:
        st.caption("This dataset has no customer id column.")
    else:
        history = customer_history(conn, dataset, customer, run.id)
        st.plotly_chart(charts.customer_timeline(history, case_id), key="case-timeline")
        earlier = history[history["label"].notna() & (history["transaction_id"] != case_id)]
        st.caption(f"Customer {customer}: {len(history):,} transactions shown, {len(earlier):,} of them labelled earlier.")
        seen = customer_devices_and_places(conn, dataset, customer)
        d1, d2 = st.columns(2)
        d1.markdown("**Devices**")
        d1.dataframe(seen["devices"], hide_index=True) if not seen["devices"].empty else d1.caption("No device column.")
        d2.markdown("**Places**")
        d2.dataframe(seen["places"], hide_index=True) if not seen["places"].empty else d2.caption("No city column.")
with tab_merchant:
    merchant = detail.get("merchant_id")
    if not merchant:
        st.caption("This dataset has no merchant id column.")
    else:
        activity = merchant_activity(conn, dataset, merchant, pd.Timestamp(detail["ts"]).to_pydatetime(), run.id, threshold)
        st.plotly_chart(charts.merchant_activity_chart(activity, detail["ts"]), key="case-merchant")
with tab_place:
    here = (float(detail["lat"]), float(detail["lon"])) if pd.notna(detail.get("lat")) and pd.notna(detail.get("lon")) else None
    usual = usual_location(conn, dataset, customer, pd.Timestamp(detail["ts"]).to_pydatetime()) if customer else None
    if here is None and usual is None:
        st.caption("No coordinates for this customer or transaction.")
    else:
        st.plotly_chart(case_path_map(usual, here), key="case-map")
with tab_detail:
    fields = pd.DataFrame({"field": list(detail), "value": [str(v) for v in detail.values()]})
    st.dataframe(fields, hide_index=True)
