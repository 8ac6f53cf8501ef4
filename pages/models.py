"""Models: every detector run and learned version, training from labels, promotion, rollback, drift."""

from __future__ import annotations

import json
from datetime import datetime, time

import streamlit as st

from application import models
from application import runs as run_actions
from dashboard import charts
from dashboard.actions import act
from dashboard.cached import drift
from dashboard.formatting import fmt_int
from dashboard.investigation import feature_descriptions
from dashboard.navigation import page_link
from dashboard.shell import dataset_page
from dashboard.state import current_analyst
from data.errors import UserError
from data.export import safe_csv
from detectors.classifiers import IMBALANCE, MODELS
from detectors.drift import PSI_MODERATE, PSI_WARNING
from detectors.registry import METRICS, importance_of, validation_table
from detectors.supervised import (
    DEFAULT_IMBALANCE,
    DEFAULT_MODEL,
    MAX_SEARCH,
    MIN_PER_CLASS,
    base_detector_run,
    count_labels,
    labels_needed,
    promotion_history,
)

SHOW_VERSION = "models-show-version"

ctx, dataset = dataset_page("Models")
conn = ctx.conn
runs = {r.id: r for r in models.versions(ctx, dataset)}
if not runs:
    st.info("No models yet: fit a detector on the Detect & tune page; versions trained from labels appear here too.")
    page_link("detect", label="Go to Detect & tune")
    st.stop()
active = run_actions.active(ctx, dataset)
current = active.run if active else None
analyst = current_analyst()
if current is not None:
    st.caption(f"The alert queue ranks by **{current.label}** ({'learned from labels' if current.kind == 'supervised' else 'detector'}).")

tab_versions, tab_train, tab_drift = st.tabs(["Versions", "Train from labels", "Drift"])

# ---------------------------------------------------------------------------------------------
with tab_versions:
    registry = models.registry(ctx, dataset)
    shown = registry.drop(columns=["params", "features"]).assign(
        params=registry["params"].map(json.dumps), features=registry["features"].map(", ".join))
    first = ["version", "active", "kind", "model", *METRICS, "detector_average_precision", "fraud_labels",
             "legitimate_labels", "created_by", "created_at", "promoted_by", "promoted_at"]
    st.dataframe(shown, hide_index=True, column_order=first + [c for c in shown.columns if c not in first], column_config={
        "version": st.column_config.NumberColumn("version", format="#%d"),
        "built_on": st.column_config.NumberColumn("built on run", format="#%d"),
        **{m: st.column_config.NumberColumn(title, format="%.3f") for m, title in METRICS.items()},
        "detector_average_precision": st.column_config.NumberColumn("its detector's AP", format="%.3f",
                                                                    help="The detector run it builds on, on the same labels"),
    })
    st.download_button("Download the registry (CSV)", safe_csv(shown), file_name=f"{dataset.name}-models.csv",
                       icon=":material/download:")
    st.caption("Metrics as measured when each version was made: a detector run on the period after its training, "
               "a learned version on its newest labels (validation), beside the detector it builds on.")
    if len(registry) > 1:
        st.plotly_chart(charts.metrics_across_versions(registry, METRICS), key="models-metrics")

    ids = list(registry["version"])
    if st.session_state.get(SHOW_VERSION) in ids:
        st.session_state["models-version"] = st.session_state.pop(SHOW_VERSION)
    chosen = st.selectbox("Version", ids, index=ids.index(current.id) if current else 0, key="models-version",
                          format_func=lambda i: runs[i].label + ("  · active" if current and current.id == i else ""))
    run = runs[int(chosen)]
    left, right = st.columns([3, 2])
    with left:
        st.subheader(f"Version #{run.id}: {run.detector}")
        what = "learned from labels" if run.kind == "supervised" else "unsupervised detector"
        trained = f"{run.train_from:%Y-%m-%d} to {run.train_until:%Y-%m-%d}" if run.train_until else \
            f"from {run.train_from:%Y-%m-%d}" if run.train_from else "all rows"
        st.write(f"{what.capitalize()}, trained by **{run.created_by}** on {run.created_at:%Y-%m-%d %H:%M}, "
                 f"{fmt_int(run.fit_rows)} rows ({trained}).")
        if run.label_counts:
            counts = run.label_counts
            st.write(f"Labels: **{fmt_int(counts['fraud'])} fraud**, **{fmt_int(counts['legitimate'])} legitimate** "
                     f"({fmt_int(counts['analyst_fraud'] + counts['analyst_legitimate'])} from analysts).")
        side = validation_table(run)
        if side is not None:
            validation = run.metrics["validation"]
            st.write(f"Validation: fitted on labels before {validation['from'][:10]}, judged on the "
                     f"{fmt_int(validation['rows'])} labelled transactions from then on.")
            st.dataframe(side.apply(lambda column: [fmt_int(v) if label in ("Labelled rows", "Fraud") else
                                                    "—" if v is None or v != v else f"{v:.3f}"
                                                    for label, v in column.items()]))
            searched = run.metrics.get("search")
            if searched:
                st.caption(f"Parameters searched first: {searched['trials']} configurations on "
                           f"{len(searched['folds'])} time-ordered folds of the older labels; the best had mean "
                           f"average precision {searched['best']['average_precision']:.3f} (the defaults "
                           f"{searched['defaults_average_precision']:.3f}).")
    with right:
        with st.expander("Parameters and features"):
            st.json({"params": run.params, "features": run.features})
        is_active = current is not None and current.id == run.id
        if is_active:
            st.success("This version ranks the queue.")
        else:
            newer = current is None or run.id > current.id
            verb = "Promote" if newer else "Roll back to"
            if st.button(f"{verb} #{run.id}", type="primary", key="models-promote",
                         help="The alert queue, case pages and patterns then use this version's scores."):
                act(lambda c: run_actions.activate(c, dataset, run.id),
                    f"#{run.id} now ranks the queue ({'promoted' if newer else 'rolled back'} by {analyst or 'app'}).")
    importance = importance_of(run)
    if importance is not None:
        st.plotly_chart(charts.feature_importance(importance, feature_descriptions()), key="models-importance")
    elif run.kind == "detector":
        st.caption("Feature importance of a detector run is its mean |SHAP|: the **Drivers** tab of Geo & time shows it "
                   "for the active run.")
    history = promotion_history(conn, dataset)
    if not history.empty:
        with st.expander(f"Promotion history ({len(history):,})"):
            st.dataframe(history, hide_index=True)

# ---------------------------------------------------------------------------------------------
with tab_train:
    st.write("Train a classifier on labelled transactions: the engineered features plus a detector's anomaly score, "
             "so what the detector finds and what analysts confirmed combine. It is validated on the newest labels "
             "and saved as a new version; it ranks the queue only once promoted.")
    has_truth = dataset.has_role("label")
    use_truth = st.checkbox(f"Also learn from the dataset's label column ({dataset.label_column})" if has_truth else
                            "Also learn from the dataset's label column (this dataset has none)",
                            value=False, disabled=not has_truth, key="train-truth",
                            help="Analysts' labels always count, and win where both exist.")
    counts = count_labels(conn, dataset, use_truth)
    a, b, c = st.columns(3)
    a.metric("Fraud labels", fmt_int(counts["fraud"]))
    b.metric("Legitimate labels", fmt_int(counts["legitimate"]))
    c.metric("From analysts", fmt_int(counts["analyst_fraud"] + counts["analyst_legitimate"]))
    short = labels_needed(counts)
    if short:
        more = " and ".join(f"**{n:,} more {k}**" for k, n in short.items())
        st.warning(f"Training needs at least {MIN_PER_CLASS} labels of each class: label {more} "
                   "(the queue's *Least certain first* order picks the most useful cases).")
    detector_runs = [r for r in runs.values() if r.kind == "detector"]
    try:
        default_base = base_detector_run(conn, dataset).id
    except UserError:  # no run is active yet
        default_base = detector_runs[-1].id if detector_runs else None
    with st.form("train-form", enter_to_submit=False):
        left, middle, right = st.columns(3)
        model = left.selectbox("Model", list(MODELS), index=list(MODELS).index(DEFAULT_MODEL), format_func=MODELS.get,
                               key="train-model", help=f"{MODELS[DEFAULT_MODEL]} is the default, chosen by measurement "
                                                       "(README: Detection quality).")
        imbalance = middle.selectbox("Imbalance", list(IMBALANCE), index=list(IMBALANCE).index(DEFAULT_IMBALANCE),
                                     format_func=IMBALANCE.get, key="train-imbalance",
                                     help="How the rare fraud class is handled while training: class weights, fewer "
                                          "legitimate rows, or synthetic frauds (SMOTE). Scoring is never resampled.")
        search_budget = right.number_input("Search configurations (0: the defaults)", 0, MAX_SEARCH, 0, step=5,
                                           key="train-search",
                                           help="Try this many parameter sets on time-ordered folds of the older labels "
                                                "first, and train the best. Click Stop to end the search: nothing is "
                                                "trained then.")
        base_ids = [r.id for r in detector_runs][::-1]
        base_id = st.selectbox("Detector whose score it reads", base_ids,
                               index=base_ids.index(default_base) if default_base in base_ids else 0,
                               format_func=lambda i: runs[i].label, key="train-base")
        limit = st.checkbox("Only labels before a date (keep later days for a fair check)", key="train-limit")
        until = st.date_input("Labels before", dataset.max_ts.date(), min_value=dataset.min_ts.date(),
                              max_value=dataset.max_ts.date(), key="train-until")
        submitted = st.form_submit_button("Train a new version", type="primary", disabled=not base_ids)
    if submitted:
        if search_budget:
            st.button("Stop the search", key="train-stop", icon=":material/stop:")  # any click reruns: the search ends

        def trained(version) -> str:
            ap, base_ap = version.metrics["average_precision"], version.metrics["baseline"]["average_precision"]
            return (f"Version #{version.id} trained: average precision {ap:.3f} on the newest labels, against "
                    f"{base_ap:.3f} for detector run #{base_id}. Promote it on the Versions tab."
                    if ap is not None and base_ap is not None else f"Version #{version.id} trained.")

        act(lambda c: models.retrain(c, dataset, model=model, imbalance=imbalance, search=int(search_budget),
                                     base_run_id=base_id, use_truth=use_truth,
                                     train_until=datetime.combine(until, time()) if limit else None),
            trained, status="Training from labels",
            then=lambda version: st.session_state.update({SHOW_VERSION: version.id}))  # select it on Versions

# ---------------------------------------------------------------------------------------------
with tab_drift:
    st.write("Has the data moved since a version was trained? The population stability index (PSI) compares each "
             f"feature, and the score, in the training period with the recent days: below {PSI_MODERATE} stable, "
             f"{PSI_MODERATE}-{PSI_WARNING} moderate, above {PSI_WARNING} drifted.")
    left, right = st.columns([3, 1])
    ids = sorted(runs, reverse=True)
    drift_id = left.selectbox("Version", ids, index=ids.index(current.id) if current else 0,
                              format_func=lambda i: runs[i].label, key="drift-version")
    days = right.number_input("Recent days", 1, 365, 7, key="drift-days")
    try:
        with st.spinner("Comparing distributions"):
            report = drift(dataset.id, int(drift_id), int(days))
    except UserError as exc:
        st.info(str(exc))
    else:
        start, end = report.training
        st.caption(f"Training period {'from ' + f'{start:%Y-%m-%d}' if start else 'from the start'} to {end:%Y-%m-%d} "
                   f"({fmt_int(report.training_rows)} rows sampled) against {report.recent[0]:%Y-%m-%d} to "
                   f"{report.recent[1]:%Y-%m-%d} ({fmt_int(report.recent_rows)} rows).")
        if report.drifted:
            st.warning(f"{len(report.drifted)} of {len(report.table)} drifted (PSI > {PSI_WARNING}): "
                       f"{', '.join(report.drifted)}. Check what changed upstream, then retrain or refit. "
                       "Features that accumulate history (a customer's count of earlier transactions, merchant fraud "
                       "rates from labels) drift as history builds up.", icon=":material/warning:")
        else:
            st.success(f"No feature has drifted past PSI {PSI_WARNING}.")
        st.plotly_chart(charts.psi_bars(report.table, PSI_MODERATE, PSI_WARNING), key="drift-chart")
        st.dataframe(report.table, hide_index=True,
                     column_config={"psi": st.column_config.NumberColumn("PSI", format="%.3f")})
        st.download_button("Download drift (CSV)", safe_csv(report.table), icon=":material/download:",
                           file_name=f"{dataset.name}-run-{int(drift_id)}-drift.csv")
