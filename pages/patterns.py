"""Geo & time: where and when alerts happen, and which features drive them; a selection filters the queue."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from application.patterns import drivers
from dashboard import investigation_charts as charts
from dashboard.cached import patterns, run_explainer
from dashboard.formatting import fmt_int, fmt_pct
from dashboard.investigation import feature_descriptions, require_run
from dashboard.maps import alert_map, tile_map
from dashboard.navigation import switch_to
from dashboard.progress import progress_status
from dashboard.shell import dataset_page
from dashboard.state import queue_filters, set_queue_filters
from data.alerts import WEEKDAYS
from data.datasets import labels_version
from data.export import safe_csv
from detectors.explain import GLOBAL_ALERTS, GLOBAL_NORMAL

ctx, dataset = dataset_page("Geo & time")
active = require_run(ctx, dataset)
run = active.run
data = patterns(dataset.id, active, labels_version(ctx.conn, dataset.id))


def to_queue(**changes) -> None:
    """Open the queue filtered to a selection (other filters are kept)."""
    set_queue_filters(queue_filters().with_(**changes))
    switch_to("queue")


tab_map, tab_time, tab_drivers = st.tabs(["Map", "Time", "What drives alerts"])

with tab_map:
    places = data["places"]
    if places.empty:
        st.info("This dataset has no coordinates (map a city or latitude/longitude column on import).")
    else:
        tiles = st.toggle("Street map background", value=False, key="patterns-tiles",
                          help="Needs the browser to reach tile.openstreetmap.org. The default map is drawn "
                               "from boundaries shipped with Centinela and works offline.")
        figure = tile_map(places) if tiles else alert_map(places)
        event = st.plotly_chart(figure, key="patterns-map", on_select="rerun", selection_mode=("points", "box", "lasso"),
                                config={"scrollZoom": False})
        clicked = [p.get("customdata", [None])[0] for p in (event.selection.points if event and event.selection else [])
                   if p.get("customdata")]
        choice = st.multiselect("Cities", list(places["city"]), default=[c for c in clicked if c], key="patterns-cities",
                                help="Click or lasso circles on the map, or pick cities here.")
        if st.button("Show these cities' alerts in the queue", disabled=not choice, icon=":material/filter_list:"):
            to_queue(cities=tuple(choice))
        table = places.sort_values("alert_rate", ascending=False)
        st.dataframe(table, hide_index=True, column_config={
            "alert_rate": st.column_config.NumberColumn("alert rate", format="percent"),
            "amount": st.column_config.NumberColumn("amount", format="S/ %.0f"),
            "lat": None, "lon": None})
        st.download_button("Download (CSV)", safe_csv(table), file_name=f"{dataset.name}-alerts-by-city.csv",
                           icon=":material/download:")

with tab_time:
    cells, trend = data["cells"], data["trend"]
    measure = st.radio("Show", ["alerts", "alert_rate"], horizontal=True, key="patterns-measure",
                       format_func={"alerts": "Alerts", "alert_rate": "Alert rate"}.get)
    heat = st.plotly_chart(charts.hour_weekday_heatmap(cells, measure), key="patterns-heatmap", on_select="rerun",
                           selection_mode=("points",))
    points = heat.selection.points if heat and heat.selection else []
    picked_hours = sorted({int(p["x"]) for p in points if "x" in p})
    picked_days = sorted({WEEKDAYS.index(p["y"]) + 1 for p in points if p.get("y") in WEEKDAYS})
    st.caption("Pick hours and weekdays (or click cells of the heatmap) to see those alerts in the queue.")
    h1, h2, h3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    hours = h1.multiselect("Hours", list(range(24)), default=picked_hours, format_func=lambda h: f"{h:02d}:00",
                           key=f"patterns-hours-{picked_hours}")
    days = h2.multiselect("Weekdays", list(range(1, 8)), default=picked_days, format_func=lambda d: WEEKDAYS[d - 1],
                          key=f"patterns-days-{picked_days}")
    if h3.button("Filter the queue", disabled=not (hours or days), key="patterns-time-to-queue"):
        to_queue(hours=tuple(hours), weekdays=tuple(days))

    band = st.plotly_chart(charts.daily_trend_chart(trend), key="patterns-trend", on_select="rerun",
                           selection_mode=("box", "points"))
    selected_days: list[date] = []
    if band and band.selection:
        for box in band.selection.box or []:
            xs = [pd.Timestamp(x).date() for x in box.get("x", [])]
            selected_days += [min(xs), max(xs)] if xs else []
        selected_days += [pd.Timestamp(p["x"]).date() for p in band.selection.points or [] if "x" in p]
    st.caption("Pick days (or drag across the chart) to see their alerts in the queue.")
    lo, hi = dataset.min_ts.date(), dataset.max_ts.date()
    default_range = (max(min(selected_days), lo), min(max(selected_days), hi)) if selected_days else (lo, hi)
    d1, d2 = st.columns([4, 1], vertical_alignment="bottom")
    picked_range = d1.date_input("Days", value=default_range, min_value=lo, max_value=hi, key=f"patterns-days-range-{default_range}")
    if d2.button("Filter the queue", key="patterns-days-to-queue",
                 disabled=not (isinstance(picked_range, (list, tuple)) and len(picked_range) == 2)):
        to_queue(start=picked_range[0], end=picked_range[1])
    total_tx, total_alerts = int(trend["transactions"].sum()), int(trend["alerts"].sum())
    st.caption(f"{fmt_int(total_alerts)} alerts among {fmt_int(total_tx)} transactions "
               f"({fmt_pct(total_alerts / total_tx if total_tx else None)}).")
    st.download_button("Download daily figures (CSV)", safe_csv(trend), file_name=f"{dataset.name}-daily.csv",
                       icon=":material/download:")

with tab_drivers:
    st.caption(f"Mean absolute SHAP attribution per feature over up to {GLOBAL_ALERTS:,} alerts and "
               f"{GLOBAL_NORMAL:,} normal transactions of run #{run.id}: which features set alerts apart.")
    explainer = lambda: run_explainer(dataset.id, run)  # noqa: E731
    result = drivers(ctx, dataset, active, explainer, compute=False)
    if result is None and st.button("Compute feature importance", type="primary", key="patterns-global"):
        with progress_status("Explaining a sample of alerts and normal transactions") as report:
            report(0.1, "Loading the model and explaining the sample")
            result = drivers(ctx, dataset, active, explainer)
            report(1.0, f"Explained {result['alert_rows'] + result['normal_rows']:,} transactions "
                        f"in {result['seconds']:.1f} s")
    if result is not None:
        describe = feature_descriptions()
        st.plotly_chart(charts.global_importance_chart(result["importance"], describe), key="patterns-global-chart")
        st.dataframe(result["importance"].assign(description=[describe.get(f, (f, ""))[0] for f in result["importance"]["feature"]]),
                     hide_index=True)
    else:
        st.info("Not computed for this run yet: it explains about a thousand transactions (a few seconds for "
                "an isolation forest, longer for other detectors). The result is stored with the run.")
