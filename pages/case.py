"""Case: one transaction, why it was flagged (SHAP), its customer, merchant and places; label it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from application import cases, labels, lists, live, rules
from application.queue import queue_page
from dashboard import investigation_charts as charts
from dashboard.actions import act, page_context
from dashboard.cached import run_explainer
from dashboard.formatting import fmt_pen, fmt_ts
from dashboard.investigation import feature_descriptions, require_run, undo_box
from dashboard.maps import case_path_map
from dashboard.navigation import page_link
from dashboard.shell import page_setup
from dashboard.state import active_dataset, show_flashes
from data.cases import CLOSE_REASONS, LABELS, STATUS_TITLES, STATUSES
from data.errors import NotFound, UserError

page_setup()
ctx = page_context()
dataset = active_dataset(ctx.conn)
show_flashes()
if dataset is None:
    st.title("Case")
    st.info("There is no dataset yet. Generate or import one on the Data page.")
    st.stop()
active = require_run(ctx, dataset)
run, threshold = active.run, active.threshold
analyst = ctx.actor

case_id = st.query_params.get("case")
if not case_id:
    st.title("Case")
    st.info("No case is open. Pick one in the alert queue, or open one of the top alerts here.")
    top = queue_page(ctx, dataset, page_size=20).rows
    if top.empty:
        st.stop()
    choice = st.selectbox("Top alerts", list(top["transaction_id"]), key="case-pick")
    if st.button("Open case", type="primary"):
        st.query_params["case"] = choice
        st.rerun()
    page_link("queue", label="Go to the alert queue")
    st.stop()

try:
    case = cases.open_case(ctx, dataset, case_id)
except NotFound as exc:
    st.title("Case")
    st.error(str(exc))
    page_link("queue", label="Back to the alert queue", icon=":material/arrow_back:")
    st.stop()
detail, state, label, score = case.detail, case.state, case.label, case.score

st.title(f"Case {case_id}")
st.caption(f"{fmt_ts(detail['ts'])} · {detail.get('merchant_name') or detail.get('merchant_id') or ''} · "
           f"{detail.get('city') or ''} · run #{run.id} ({run.detector})")
arrived = live.arrival(ctx, dataset, case_id)
if arrived:
    st.caption(f":material/api: Arrived through the API with key **{arrived['api_key'].removeprefix('api:')}** at "
               f"{arrived['received_at']:%Y-%m-%d %H:%M:%S} (request {arrived['request_id'][:8]}).")
m1, m2, m3, m4 = st.columns(4)
m1.metric("Amount", fmt_pen(detail["amount"]))
if score is not None:
    m2.metric("Score", f"{score:.4f}", help=f"Threshold {threshold:.4f}; higher = more anomalous.",
              delta=f"rank {case.rank:,} of {case.scored:,}", delta_color="off")
m3.metric("Case status", STATUS_TITLES[state["status"]] + (f" ({state['reason']})" if state["reason"] else ""))
m4.metric("Label", label or "none", help=f"Assigned to {state['assignee']}" if state["assignee"] else "Unassigned")
if score is not None and not case.is_alert:
    st.warning("This transaction is below the run's threshold: it is not an alert at the current contamination.")

explain_col, act_col = st.columns([3, 2], gap="large")

# --- why it was flagged -------------------------------------------------------------------
with explain_col:
    try:
        with st.spinner("Computing SHAP attributions…"):
            explanation = cases.explanation(ctx, case, lambda: run_explainer(dataset.id, run))
    except UserError as exc:
        st.error(f"Could not explain this case: {exc}")
    else:
        describe = feature_descriptions()
        attributions = explanation["attributions"]
        st.plotly_chart(charts.attribution_waterfall(attributions, explanation["base_value"], explanation["output"],
                                                     describe, score=score), key="case-shap")
        total = float(attributions["value"].sum())
        st.caption(f"SHAP ({explanation['method']} explainer) explains {explanation['explains']}. "
                   f"Usual {explanation['base_value']:.4f} {'+' if total >= 0 else '−'} attributions {abs(total):.4f} "
                   f"= this transaction's {explanation['output']:.4f}."
                   + (" Stored with the run." if explanation["cached"] else f" Computed in {explanation['seconds']:.2f} s."))
        lineage = explanation["lineage"]
        if explanation["recomputed"]:
            st.info("The features were recomputed since this case was last explained: the explanation above is "
                    "of the current features.", icon=":material/update:")
        if not lineage["score_is_current"]:
            st.warning(f"Run #{run.id} scored this transaction on earlier features (they were recomputed since): "
                       "its score may differ from what these attributions add up to. Score the dataset again with "
                       "this run to align them.", icon=":material/history:")
        if lineage["features_behind_labels"]:
            st.caption("Labels have changed since the features were computed: the merchant fraud rate does not "
                       "see them yet (recompute features on the Data page).")
        table = attributions.assign(
            description=[describe.get(f, (f, ""))[0] for f in attributions["feature"]],
            unit=[describe.get(f, ("", ""))[1] for f in attributions["feature"]],
            direction=["toward suspicious" if v > 0 else "toward normal" if v < 0 else "none" for v in attributions["value"]],
        ).sort_values("value", ascending=False, key=abs)
        with st.expander("All attributions"):
            st.dataframe(table[["description", "raw", "unit", "value", "direction", "feature"]], hide_index=True,
                         column_config={"value": st.column_config.NumberColumn("attribution", format="%+.4f"),
                                        "raw": st.column_config.TextColumn("value")})

# --- rules and lists ----------------------------------------------------------------------
with explain_col:
    matched = rules.case_rules(ctx, dataset, case.tx_row)
    st.markdown("**Rules and lists**")
    if matched.fired.empty and matched.entries.empty:
        st.caption("No active or shadow rule holds for this transaction, and it is on no list.")
    if not matched.fired.empty:
        st.dataframe(matched.fired, hide_index=True, key="case-rules")
        st.caption("Rules that hold for this transaction (shadow rules raise nothing; allow rules suppress the alert).")
    if not matched.entries.empty:
        st.dataframe(matched.entries, hide_index=True, key="case-list-entries")

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
                act(lambda c: labels.label(c, dataset, [case_id], choice, note=note, close=close),
                    f"Labelled {case_id} as {choice}.")
    undo_box(ctx, dataset, key="case-undo")

    with st.container(border=True):
        st.markdown("**Workflow**")
        w1, w2 = st.columns(2, vertical_alignment="bottom")
        if w1.button("Take this case", disabled=state["assignee"] == analyst and state["status"] == "in_review",
                     help="Assign it to yourself and mark it in review"):
            act(lambda c: cases.take(c, dataset, [case_id]), f"{case_id} is now yours, in review.")
        assignee = w2.selectbox("Assign to", cases.analysts(ctx, dataset), index=None, accept_new_options=True,
                                key="case-assignee", placeholder="choose or type a name")
        if assignee and st.button(f"Assign to {assignee}", key="case-assign"):
            act(lambda c: cases.change(c, dataset, [case_id], assignee=assignee), f"{case_id} assigned to {assignee}.")
        s1, s2 = st.columns(2)
        status = s1.selectbox("Status", STATUSES, index=STATUSES.index(state["status"]), format_func=STATUS_TITLES.get,
                              key="case-status")
        reason = s2.selectbox("Reason (to close)", CLOSE_REASONS, index=None, key="case-reason", disabled=status != "closed")
        if st.button("Update status", key="case-update-status", disabled=status == state["status"]):
            act(lambda c: cases.change(c, dataset, [case_id], status=status, reason=reason),
                f"{case_id} is now {STATUS_TITLES[status].lower()}.")

    with st.container(border=True):
        st.markdown("**Block or allow**")
        why = st.text_input("Reason", value=f"case {case_id}", max_chars=500, key="case-list-reason")
        l1, l2, l3 = st.columns(3)
        for column, (kind, key, label) in zip((l1, l2, l3), (("block", "customer_id", "Block this customer"),
                                                            ("allow", "customer_id", "Allow this customer"),
                                                            ("allow", "merchant_id", "Allow this merchant")), strict=True):
            if column.button(label, key=f"case-{kind}-{key}", disabled=not detail.get(key)):
                act(lambda c, k=kind, col=key: lists.add_from_case(c, dataset, case_id, kind=k, key=col, reason=why),
                    lambda done: f"{done[1]} is on list {done[0].name} ({done[0].kind}).")

    history_labels, history_case = st.tabs(["Label history", "Case history"])
    with history_labels:
        labels_so_far = case.label_history
        if labels_so_far.empty:
            st.caption("No labels yet.")
        else:
            st.dataframe(labels_so_far, hide_index=True)
    with history_case:
        events = case.case_history
        if events.empty:
            st.caption("Untouched: open and unassigned.")
        else:
            st.dataframe(events, hide_index=True)

# --- surroundings -------------------------------------------------------------------------
around = cases.surroundings(ctx, case)
customer = case.customer_id
tab_customer, tab_merchant, tab_place, tab_detail = st.tabs(["Customer history", "Merchant", "Location", "All fields"])
with tab_customer:
    if not customer:
        st.caption("This dataset has no customer id column.")
    else:
        history = around.customer_history
        st.plotly_chart(charts.customer_timeline(history, case_id), key="case-timeline")
        earlier = history[history["label"].notna() & (history["transaction_id"] != case_id)]
        st.caption(f"Customer {customer}: {len(history):,} transactions shown, {len(earlier):,} of them labelled earlier.")
        d1, d2 = st.columns(2)
        d1.markdown("**Devices**")
        if around.devices.empty:
            d1.caption("No device column.")
        else:
            d1.dataframe(around.devices, hide_index=True)
        d2.markdown("**Places**")
        if around.places.empty:
            d2.caption("No city column.")
        else:
            d2.dataframe(around.places, hide_index=True)
with tab_merchant:
    if not case.merchant_id:
        st.caption("This dataset has no merchant id column.")
    else:
        st.plotly_chart(charts.merchant_activity_chart(around.merchant_activity, detail["ts"]), key="case-merchant")
with tab_place:
    here = (float(detail["lat"]), float(detail["lon"])) if pd.notna(detail.get("lat")) and pd.notna(detail.get("lon")) else None
    if here is None and around.usual_location is None:
        st.caption("No coordinates for this customer or transaction.")
    else:
        st.plotly_chart(case_path_map(around.usual_location, here), key="case-map")
with tab_detail:
    fields = pd.DataFrame({"field": list(detail), "value": [str(v) for v in detail.values()]})
    st.dataframe(fields, hide_index=True)
