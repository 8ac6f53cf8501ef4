"""Plotly figures of the investigation pages: explanations, time patterns and a case's history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import LAYOUT, NORMAL, SUSPICIOUS
from data.alerts import WEEKDAYS

TOP_FEATURES = 10
SHOWN_UNITS = {"PEN", "log PEN", "km", "km/h", "s"}  # others (count, 0/1, hour 0-23) read better bare


def _fmt_raw(value: object, unit: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    if isinstance(value, (int, float, np.number)):
        number = float(value)
        text = f"{number:,.0f}" if abs(number) >= 100 or number == int(number) else f"{number:,.2f}"
        return f"{text} {unit}" if unit in SHOWN_UNITS else text
    return str(value)


def attribution_waterfall(attributions: pd.DataFrame, base_value: float, output: float,
                          describe: dict[str, tuple[str, str]], top: int = TOP_FEATURES,
                          score: float | None = None) -> go.Figure:
    """Waterfall from the usual output to this transaction's: red bars push toward suspicious,
    blue toward normal; the top features by |value|, the rest summed in one bar. The bars add up
    in the explainer's units (an IsolationForest's negative path length: no analyst reads that),
    so the axis is unlabelled by number and the last bar says the transaction's `score`, as the
    queue shows it."""
    frame = attributions.assign(size=attributions["value"].abs()).sort_values("size", ascending=False)
    shown, rest = frame.head(top), frame.iloc[top:]
    labels, hovers = [], []
    for _, row in shown.iterrows():
        description, unit = describe.get(row["feature"], (row["feature"], ""))
        labels.append(f"{row['feature']} = {_fmt_raw(row['raw'], unit)}")
        hovers.append(description)
    values = list(shown["value"])
    if len(rest):
        labels.append(f"{len(rest)} other features")
        hovers.append(", ".join(rest["feature"]))
        values.append(float(rest["value"].sum()))
    # Plotly draws a horizontal waterfall top-down in the order given: smallest at the bottom.
    labels, values, hovers = labels[::-1], values[::-1], hovers[::-1]
    fig = go.Figure(go.Waterfall(
        orientation="h", base=base_value, measure=["relative"] * len(values) + ["total"],
        y=labels + ["this transaction"], x=values + [0.0],
        customdata=hovers + ["the usual value + every contribution" if score is None else f"score {score:.4f}"],
        increasing=dict(marker=dict(color=SUSPICIOUS)), decreasing=dict(marker=dict(color=NORMAL)),
        totals=dict(marker=dict(color="#555")),
        text=[f"{v:+.3f}" for v in values] + [f"{output:.3f}" if score is None else f"score {score:.4f}"],
        textposition="auto", cliponaxis=False,
        hovertemplate="%{y}<br>%{customdata}<br>%{x:+.4f}<extra></extra>", connector=dict(line=dict(color="#bbb", width=0.5)),
    ))
    fig.add_vline(x=base_value, line_dash="dot", line_color="#888",
                  annotation_text="a usual transaction" if score is not None else f"usual {base_value:.3f}",
                  annotation_position="bottom right")
    fig.update_layout(title=dict(text="Why it was flagged",
                                 subtitle=dict(text="red pushes toward suspicious, blue toward normal")),
                      xaxis_title="toward normal ← contribution → toward suspicious",
                      **{**LAYOUT, "height": 120 + 30 * (len(values) + 1), "margin": dict(l=10, r=50, t=60, b=10)},
                      yaxis=dict(automargin=True),
                      xaxis=dict(showticklabels=score is None))  # raw explainer units read as nothing to an analyst
    return fig


def global_importance_chart(importance: pd.DataFrame, describe: dict[str, tuple[str, str]], top: int = 15) -> go.Figure:
    frame = importance.head(top).iloc[::-1]
    names = [describe.get(f, (f, ""))[0] for f in frame["feature"]]
    fig = go.Figure([
        go.Bar(y=names, x=frame["alerts"], orientation="h", name="alerts", marker_color=SUSPICIOUS),
        go.Bar(y=names, x=frame["normal"], orientation="h", name="normal transactions", marker_color=NORMAL),
    ])
    fig.update_layout(title="Mean |SHAP| per feature: alerts vs normal transactions", barmode="group",
                      xaxis_title="mean |attribution|", **{**LAYOUT, "height": 140 + 34 * len(frame)},
                      yaxis=dict(automargin=True), legend=dict(orientation="h", y=-0.08, x=0))
    return fig


def hour_weekday_heatmap(cells: pd.DataFrame, value: str = "alerts") -> go.Figure:
    """Hour of day (x) by weekday (y); `value` is 'alerts' or 'alert_rate'."""
    grid = np.full((7, 24), np.nan)
    for row in cells.itertuples(index=False):
        grid[int(row.weekday) - 1, int(row.hour)] = getattr(row, value)
    rate = value == "alert_rate"
    fig = go.Figure(go.Heatmap(
        z=grid, x=list(range(24)), y=list(WEEKDAYS), colorscale="YlOrRd",
        hovertemplate="%{y} %{x}:00: %{z" + (":.2%" if rate else ":,") + "}<extra></extra>",
        colorbar=dict(tickformat=".1%" if rate else ",")))
    fig.update_layout(title=("Alert rate" if rate else "Alerts") + " by hour and weekday",
                      xaxis=dict(title="hour of day", dtick=2), yaxis=dict(autorange="reversed"), **LAYOUT)
    return fig


def daily_trend_chart(trend: pd.DataFrame) -> go.Figure:
    """Transactions (bars, left axis), alerts and confirmed fraud (lines, right axis) per day."""
    fig = go.Figure([
        go.Bar(x=trend["day"], y=trend["transactions"], name="transactions", marker_color="#c9d6e8", yaxis="y"),
        go.Scatter(x=trend["day"], y=trend["alerts"], name="alerts", mode="lines+markers",
                   line=dict(color=SUSPICIOUS), yaxis="y2"),
        go.Scatter(x=trend["day"], y=trend["confirmed_fraud"], name="confirmed fraud (labels)", mode="lines",
                   line=dict(color="#222", dash="dot"), yaxis="y2"),
    ])
    if trend["known_fraud"].notna().any():
        fig.add_trace(go.Scatter(x=trend["day"], y=trend["known_fraud"], name="fraud in the data's label column",
                                 mode="lines", line=dict(color="#999", width=1), yaxis="y2"))
    fig.update_layout(title="Daily trend", dragmode="select",
                      yaxis=dict(title="transactions"), yaxis2=dict(title="alerts / fraud", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=1.12), **LAYOUT)
    return fig


def customer_timeline(history: pd.DataFrame, transaction_id: str) -> go.Figure:
    """The customer's amounts over time; this transaction marked, labelled ones coloured."""
    colours = history["label"].map({"fraud": SUSPICIOUS, "legitimate": "#2e7d32", "unsure": "#f9a825"}).fillna(NORMAL)
    fig = go.Figure(go.Scatter(
        x=history["ts"], y=history["amount"], mode="lines+markers", line=dict(color="#bbb", width=1),
        marker=dict(color=colours, size=7), name="transactions",
        customdata=np.column_stack([history["transaction_id"], history["label"].fillna("—")]),
        hovertemplate="%{x}<br>S/ %{y:,.2f}<br>%{customdata[0]} · label %{customdata[1]}<extra></extra>"))
    this = history[history["transaction_id"] == transaction_id]
    if not this.empty:
        fig.add_trace(go.Scatter(x=this["ts"], y=this["amount"], mode="markers", name="this transaction",
                                 marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color=SUSPICIOUS, width=3))))
    fig.update_layout(title="Customer's amounts over time (red: labelled fraud, green: legitimate)",
                      yaxis_title="amount (PEN)", showlegend=False, **LAYOUT)
    return fig


def merchant_activity_chart(activity: pd.DataFrame, day: object) -> go.Figure:
    fig = go.Figure([
        go.Bar(x=activity["day"], y=activity["transactions"], name="transactions", marker_color="#c9d6e8"),
        go.Bar(x=activity["day"], y=activity["alerts"], name="alerts", marker_color=SUSPICIOUS),
    ])
    fig.add_vline(x=pd.Timestamp(day).timestamp() * 1000, line_dash="dot", line_color="#555")
    fig.update_layout(title="Merchant's activity around this day", barmode="overlay", **LAYOUT,
                      legend=dict(orientation="h", y=1.12))
    return fig
