"""Detect & tune: fit detectors, move the threshold, read the metrics, compare runs, search parameters."""

from __future__ import annotations

import json
from datetime import datetime, time

import pandas as pd
import streamlit as st

from application import models, tuning
from application import runs as run_actions
from dashboard import charts
from dashboard.actions import act
from dashboard.cached import categorical_candidates_of, run_alert_count, run_ranking, run_score_histogram
from dashboard.cached import run_threshold_counts as threshold_counts
from dashboard.controls import param_controls
from dashboard.formatting import fmt_int, fmt_pct
from dashboard.shell import dataset_page
from data.datasets import labels_version
from data.export import safe_csv
from detectors.base import DEFAULT_CONTAMINATION, DEFAULT_DETECTOR, MAX_CONTAMINATION, MIN_CONTAMINATION, registered
from detectors.ensemble import COMBINE
from detectors.runs import default_split
from detectors.tuning import METRICS, default_space

ctx, dataset = dataset_page("Detect & tune")

DETECTORS = registered()
names = list(DETECTORS)
# Versions learned from labels are judged on their own validation labels: the Models page shows them.
runs = [r for r in models.versions(ctx, dataset) if r.kind == "detector"]
active = run_actions.active(ctx, dataset)
current = active.run if active else None
version = labels_version(ctx.conn, dataset.id)
tab_run, tab_active, tab_compare, tab_tune = st.tabs(["Run a detector", "Threshold & metrics", "Compare runs", "Tune"])


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


# ---------------------------------------------------------------------------------------------
with tab_run:
    chosen = st.multiselect("Detectors (several make an ensemble)", names, default=[DEFAULT_DETECTOR],
                            format_func=lambda n: DETECTORS[n].title, key="detect-detectors")
    for name in chosen:
        cls = DETECTORS[name]
        limits = []
        if cls.fit_sample:
            limits.append(f"fits on a sample of {cls.fit_sample:,} rows")
        if cls.max_rows:
            limits.append(f"refuses more than {cls.max_rows:,} rows")
        st.caption(f"**{cls.title}**: {cls.summary}" + (f" ({'; '.join(limits)})" if limits else ""))
    with st.form("fit-form"):
        params = {}
        for name in chosen:
            if DETECTORS[name].param_specs:
                with st.expander(f"{DETECTORS[name].title} parameters"):
                    params[name] = param_controls(DETECTORS[name].param_specs, f"fit-{name}")
        left, right = st.columns(2)
        combine = left.selectbox("Combine ensemble scores by", COMBINE, disabled=len(chosen) < 2,
                                 help="mean or max of z-scored scores, or the mean percentile rank")
        contamination = right.number_input("Contamination (share of rows to alert on)", MIN_CONTAMINATION,
                                           MAX_CONTAMINATION, DEFAULT_CONTAMINATION, step=0.001, format="%.3f")
        extra = st.multiselect("Categorical columns to add as features", categorical_candidates_of(dataset),
                               help="One-hot encoded. Measured on generated data they can dilute isolation-based detectors.")
        hold_out = st.checkbox("Hold out a later period for evaluation (time-aware validation)", value=True)
        until = st.date_input("Train until (evaluate from this day on)", default_split(dataset).date(),
                              min_value=dataset.min_ts.date(), max_value=dataset.max_ts.date())
        if st.form_submit_button("Fit and score", type="primary"):
            act(lambda c: run_actions.fit(c, dataset, chosen, params, contamination=contamination, combine=combine,
                                          train_until=datetime.combine(until, time()) if hold_out else None,
                                          categorical=extra),
                lambda run: f"Run #{run.id} is now the active run: fitted in {run.fit_seconds:.1f} s, "
                            f"scored {dataset.row_count:,} rows in {run.score_seconds:.1f} s.",
                status=f"Fitting {' + '.join(chosen) or 'nothing'} on {dataset.name}")

# ---------------------------------------------------------------------------------------------
with tab_active:
    if not runs:
        st.info("No runs yet: fit a detector in the first tab.")
    else:
        by_id = {r.id: r for r in runs}
        if current is not None and current.kind == "supervised":
            st.info(f"The queue ranks by {current.label}, a version learned from labels: see the Models page.")
        start_index = list(by_id)[::-1].index(current.id) if current and current.id in by_id else 0
        selected_id = st.selectbox("Run", list(by_id)[::-1], index=start_index,
                                   format_func=lambda i: by_id[i].label + ("  · active" if current and current.id == i else ""),
                                   key="detect-run")
        run = by_id[selected_id]
        is_active = current is not None and current.id == run.id
        if not is_active and st.button("Make this the active run", help="The alert queue and other pages use the active run."):
            act(lambda c: run_actions.activate(c, dataset, run.id), f"Run #{run.id} is now the active run.")
        contamination = st.slider("Contamination", MIN_CONTAMINATION, MAX_CONTAMINATION, float(run.contamination),
                                  step=0.001, format="%.3f",
                                  key=f"contamination-{run.id}",
                                  help="Moves the threshold on the stored scores; nothing is refitted.")
        threshold, alerts = run_alert_count(run, contamination)
        ranking, curve = run_ranking(dataset.id, run, version)
        at_threshold = threshold_counts(dataset.id, run, version).metrics(threshold)
        c1, c2, c3, c4, c5 = st.columns(5)
        c1.metric("Alerts", fmt_int(alerts), help="Transactions at or above the threshold, in the whole dataset.")
        c2.metric("Threshold", f"{threshold:.4f}")
        c3.metric("Precision", fmt_pct(at_threshold["precision"], 1))
        c4.metric("Recall", fmt_pct(at_threshold["recall"], 1))
        c5.metric("Average precision", _fmt(ranking["average_precision"]))
        period = f"from {run.train_until:%Y-%m-%d} on (after training)" if run.train_until else "on every row (in-sample)"
        st.caption(f"Metrics {period}: {fmt_int(ranking['labelled'])} labelled transactions, {fmt_int(ranking['fraud'])} fraud. "
                   f"ROC AUC {_fmt(ranking['roc_auc'])} · precision@{ranking['k']} {_fmt(ranking['precision_at_k'])} · "
                   f"card precision@{ranking['k']} {_fmt(ranking['card_precision_at_k'])} (handbook's "
                   f"{_fmt(ranking['card_precision_at_k_handbook'])}) · F1 {_fmt(at_threshold['f1'])} · "
                   f"{run.detector}{' (fitted on a sample)' if run.sampled else ''}, fit {run.fit_seconds:.1f} s")
        if contamination != run.contamination and st.button(f"Save contamination {contamination:.3f} for run #{run.id}"):
            act(lambda c: run_actions.save_threshold(c, run.id, contamination),
                f"Saved contamination {contamination:.3f} for run #{run.id}.")
        left, right = st.columns(2)
        left.plotly_chart(charts.score_histogram(run_score_histogram(run), threshold), key="hist")
        if at_threshold["recall_by_scenario"]:
            right.plotly_chart(charts.scenario_recall(at_threshold["recall_by_scenario"]), key="scenario")
        elif not ranking["labelled"]:
            right.info("No labels for this dataset yet: metrics appear once it has a label column or analyst labels.")
        if curve:
            a, b, c = st.columns(3)
            a.plotly_chart(charts.pr_curves({run.label: curve["pr"]}), key="pr")
            b.plotly_chart(charts.roc_curves({run.label: curve["roc"]}), key="roc")
            c.plotly_chart(charts.confusion_matrix(at_threshold["confusion"]), key="confusion")
        report = {"run": run.id, "detector": run.detector, "params": run.params, "contamination": contamination,
                  **ranking, **at_threshold}
        st.download_button("Download these metrics (JSON)", json.dumps(report, indent=2, default=str),
                           file_name=f"{dataset.name}-run-{run.id}-metrics.json", mime="application/json")

# ---------------------------------------------------------------------------------------------
with tab_compare:
    if len(runs) < 2:
        st.info("Fit at least two runs to compare them.")
    else:
        by_id = {r.id: r for r in runs}
        picked = st.multiselect("Runs to compare", list(by_id)[::-1], default=list(by_id)[::-1][:3],
                                format_func=lambda i: by_id[i].label, key="compare-runs")
        rows, pr = [], {}
        for run_id in picked:
            run = by_id[run_id]
            ranking, curve = run_ranking(dataset.id, run, version)
            threshold, alerts = run_alert_count(run, run.contamination)
            at = threshold_counts(dataset.id, run, version).metrics(threshold)
            rows.append({"run": run.label, "params": json.dumps(run.params), "contamination": run.contamination,
                         "alerts": alerts, "precision": at["precision"], "recall": at["recall"], "f1": at["f1"],
                         "roc_auc": ranking["roc_auc"], "average_precision": ranking["average_precision"],
                         f"precision@{ranking['k']}": ranking["precision_at_k"],
                         f"card precision@{ranking['k']}": ranking["card_precision_at_k"],
                         f"handbook card precision@{ranking['k']}": ranking["card_precision_at_k_handbook"],
                         "trained until": run.train_until, "fit s": round(run.fit_seconds, 2)})
            if curve:
                pr[run.label] = curve["pr"]
        table = pd.DataFrame(rows)
        st.dataframe(table, hide_index=True)
        st.download_button("Download comparison (CSV)", safe_csv(table), file_name=f"{dataset.name}-runs.csv")
        if pr:
            st.plotly_chart(charts.pr_curves(pr), key="compare-pr")

# ---------------------------------------------------------------------------------------------
with tab_tune:
    st.write("Search a detector's parameters, scored on labelled data from a later period. "
             "Each trial is saved as it finishes: click **Stop** (or any control) to end a search early and keep its trials.")
    detector = st.selectbox("Detector", names, format_func=lambda n: DETECTORS[n].title, key="tune-detector")
    with st.form("tune-form"):
        space = {}
        for name, values in default_space(detector).items():
            space[name] = st.multiselect(f"{name} values", values, default=values, key=f"tune-{detector}-{name}",
                                         accept_new_options=True)
        contaminations = st.multiselect("Contamination values", [0.001, 0.005, 0.01, 0.02, 0.05],
                                        default=[DEFAULT_CONTAMINATION])
        a, b, c = st.columns(3)
        strategy = a.radio("Strategy", ["grid", "random"], horizontal=True)
        budget = b.number_input("Budget (trials at most)", 1, 200, 12)
        metric = c.selectbox("Scored by", METRICS)
        until = st.date_input("Train until (validate from this day on)", default_split(dataset).date(), key="tune-until",
                              min_value=dataset.min_ts.date(), max_value=dataset.max_ts.date())
        start = st.form_submit_button("Start search", type="primary")
    if start:
        st.button("Stop", key="tune-stop")  # any click reruns the page, which ends the search
        declared = {p.name: p for p in DETECTORS[detector].param_specs}

        def search(c):
            parsed = {n: [declared[n].parse(v) for v in vals] for n, vals in space.items() if vals}
            return tuning.search(c, dataset, detector, space=parsed, contaminations=contaminations, budget=int(budget),
                                 strategy=strategy, metric=metric, train_until=datetime.combine(until, time()))

        # Trials are kept as they finish; the table below shows them (no rerun, so the table is this run's).
        act(search, status=f"Tuning {DETECTORS[detector].title}", rerun=False)
    trials = tuning.trials(ctx, dataset)
    if trials.empty:
        st.info("No searches yet.")
    else:
        study = st.selectbox("Search", trials["study"].unique().tolist(), key="tune-study")
        shown = trials[trials["study"] == study].reset_index(drop=True)
        shown_metric = shown["metric"].iloc[0]
        st.dataframe(shown.drop(columns=["study"]).assign(params=shown["params"].map(json.dumps)),
                     hide_index=True, column_config={"value": st.column_config.NumberColumn(shown_metric, format="%.4f")})
        st.plotly_chart(charts.tuning_results(shown, "value"), key="tune-chart")
        best = int(shown["value"].idxmax())
        trial = st.selectbox("Trial to save as a run", shown.index, index=best,
                             format_func=lambda i: f"trial {shown.loc[i, 'trial']}: {shown_metric} {shown.loc[i, 'value']:.4f} "
                             f"{shown.loc[i, 'params']} contamination {shown.loc[i, 'contamination']}")
        if st.button("Save as a run (fits on the full training period)"):
            row = shown.loc[trial]
            act(lambda c: tuning.save_trial(c, dataset, study, int(row["trial"]), datetime.combine(until, time())),
                lambda run: f"Saved trial {row['trial']} as run #{run.id}, now the active run.",
                status=f"Fitting trial {row['trial']}")
