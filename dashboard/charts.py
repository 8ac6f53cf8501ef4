"""Plotly figures for pages: pure functions, data in, figure out (nothing is queried here)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

SUSPICIOUS = "#b3261e"
NORMAL = "#4a6fa5"
# No `template`: st.plotly_chart's default theme styles the figures like the app. Naming one
# ("plotly_white") cost 13 ms a figure to copy and validate, and doubled the figure sent.
LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320)


def score_histogram(histogram: tuple[np.ndarray, np.ndarray], threshold: float) -> go.Figure:
    """A histogram of scores (`np.histogram`'s counts and edges: a million scores send 80 bars)
    with the threshold."""
    counts, edges = histogram
    centres = (edges[:-1] + edges[1:]) / 2
    colours = np.where(centres >= threshold, SUSPICIOUS, NORMAL)
    fig = go.Figure(go.Bar(x=centres, y=counts, width=np.diff(edges), marker_color=colours,
                           hovertemplate="score %{x:.3f}<br>%{y:,} transactions<extra></extra>"))
    fig.add_vline(x=threshold, line_dash="dash", line_color=SUSPICIOUS,
                  annotation_text=f"threshold {threshold:.3f}", annotation_position="top right")
    fig.update_layout(title="Anomaly scores (log count)", xaxis_title="score (higher = more anomalous)",
                      yaxis_title="transactions", yaxis_type="log", bargap=0, **LAYOUT)
    return fig


def pr_curves(curves: dict[str, pd.DataFrame]) -> go.Figure:
    """Precision-recall curves, one per named run."""
    fig = go.Figure()
    for name, curve in curves.items():
        fig.add_trace(go.Scatter(x=curve["recall"], y=curve["precision"], mode="lines", name=name))
    fig.update_layout(title="Precision-recall", xaxis_title="recall", yaxis_title="precision",
                      xaxis_range=[0, 1], yaxis_range=[0, 1.02], **LAYOUT)
    return fig


def roc_curves(curves: dict[str, pd.DataFrame]) -> go.Figure:
    fig = go.Figure()
    for name, curve in curves.items():
        fig.add_trace(go.Scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", name=name))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#999"), showlegend=False))
    fig.update_layout(title="ROC", xaxis_title="false positive rate", yaxis_title="true positive rate",
                      xaxis_range=[0, 1], yaxis_range=[0, 1.02], **LAYOUT)
    return fig


def scenario_recall(by_scenario: dict[str, Any]) -> go.Figure:
    """Recall per fraud scenario at the threshold, with counts on hover."""
    names = sorted(by_scenario)
    fig = go.Figure(go.Bar(
        x=[by_scenario[n]["recall"] for n in names], y=names, orientation="h", marker_color=SUSPICIOUS,
        customdata=[[by_scenario[n]["caught"], by_scenario[n]["fraud"]] for n in names],
        hovertemplate="%{y}: %{x:.1%} (%{customdata[0]:,} of %{customdata[1]:,})<extra></extra>"))
    fig.update_layout(title="Recall per fraud scenario", xaxis_title="share caught", xaxis_range=[0, 1],
                      xaxis_tickformat=".0%", **LAYOUT)
    return fig


def confusion_matrix(confusion: dict[str, int]) -> go.Figure:
    z = [[confusion["tp"], confusion["fn"]], [confusion["fp"], confusion["tn"]]]
    fig = go.Figure(go.Heatmap(z=z, x=["alert", "no alert"], y=["fraud", "legitimate"], colorscale="Reds",
                               showscale=False, text=[[f"{v:,}" for v in row] for row in z], texttemplate="%{text}"))
    fig.update_layout(title="Confusion at the threshold", **LAYOUT)
    return fig


def tuning_results(trials: pd.DataFrame, metric: str) -> go.Figure:
    fig = go.Figure(go.Scatter(
        x=trials["trial"], y=trials[metric], mode="markers+lines", marker_color=SUSPICIOUS,
        text=trials["params"].astype(str) + " · contamination " + trials["contamination"].astype(str),
        hovertemplate="trial %{x}: %{y:.3f}<br>%{text}<extra></extra>"))
    fig.update_layout(title=f"{metric.replace('_', ' ')} by trial", xaxis_title="trial", yaxis_title=metric, **LAYOUT)
    return fig


def metrics_across_versions(registry: pd.DataFrame, metrics: dict[str, str]) -> go.Figure:
    """Each version's metrics as measured when it was made, oldest first; supervised versions marked."""
    frame = registry.sort_values("version")
    names = [f"#{v} {m}" for v, m in zip(frame["version"], frame["model"], strict=True)]
    fig = go.Figure()
    for key, title in metrics.items():
        fig.add_trace(go.Scatter(x=names, y=frame[key], mode="lines+markers", name=title, connectgaps=True,
                                 marker=dict(symbol=["diamond" if k == "supervised" else "circle" for k in frame["kind"]],
                                             size=10)))
    fig.update_layout(title="Metrics across versions (◆ learned from labels)", yaxis_title="score", yaxis_range=[0, 1.02],
                      xaxis_type="category", **LAYOUT)
    return fig


def feature_importance(importance: pd.DataFrame, describe: dict[str, tuple[str, str]], top: int = 15) -> go.Figure:
    """Permutation importance: how much average precision drops when a feature is shuffled."""
    frame = importance.head(top).iloc[::-1]
    fig = go.Figure(go.Bar(y=[describe.get(f, (f, ""))[0] for f in frame["feature"]], x=frame["importance"],
                           orientation="h", marker_color=SUSPICIOUS,
                           hovertemplate="%{y}: %{x:.4f}<extra></extra>"))
    fig.update_layout(title="Drop in average precision when the feature is shuffled", xaxis_title="importance",
                      **{**LAYOUT, "height": 140 + 26 * len(frame)}, yaxis=dict(automargin=True))
    return fig


def psi_bars(table: pd.DataFrame, moderate: float, warning: float) -> go.Figure:
    """PSI per feature, coloured by status, with the two reading lines."""
    frame = table.iloc[::-1]
    colours = {"drifted": SUSPICIOUS, "moderate": "#e0a030", "stable": NORMAL}
    fig = go.Figure(go.Bar(y=frame["feature"], x=frame["psi"], orientation="h",
                           marker_color=[colours[s] for s in frame["status"]],
                           hovertemplate="%{y}: PSI %{x:.3f}<extra></extra>"))
    for x, text in ((moderate, "moderate"), (warning, "drifted")):
        fig.add_vline(x=x, line_dash="dot", line_color="#888", annotation_text=text, annotation_position="top")
    fig.update_layout(title="Population stability index: training period vs recent", xaxis_title="PSI",
                      **{**LAYOUT, "height": 140 + 22 * len(frame)}, yaxis=dict(automargin=True))
    return fig


def kpi_trend(frame: pd.DataFrame, period: str) -> go.Figure:
    """Alerts and confirmed fraud per day or week (bars), alert rate (line, right axis)."""
    fig = go.Figure([
        go.Bar(x=frame["key"], y=frame["alerts"], name="alerts", marker_color=NORMAL),
        go.Bar(x=frame["key"], y=frame["confirmed_fraud"], name="confirmed fraud", marker_color=SUSPICIOUS),
        go.Scatter(x=frame["key"], y=frame["alert_rate"] * 100, name="alert rate %", yaxis="y2", mode="lines",
                   line=dict(color="#444", dash="dot")),
    ])
    fig.update_layout(title=f"Alerts and confirmed fraud per {period}", barmode="overlay", yaxis_title="transactions",
                      yaxis2=dict(title="alert rate %", overlaying="y", side="right", rangemode="tozero"),
                      legend=dict(orientation="h", y=-0.15, x=0), **LAYOUT)
    return fig


def rule_backtest(days: pd.DataFrame, title: str = "Hits per day") -> go.Figure:
    """A rule's backtest per day: hits the model already alerts on, and hits it would add."""
    fig = go.Figure()
    fig.add_trace(go.Bar(x=days["day"], y=days["already_alerted"], name="already alerted by the model",
                         marker_color=NORMAL, hovertemplate="%{x|%Y-%m-%d}: %{y:,} already alerted<extra></extra>"))
    fig.add_trace(go.Bar(x=days["day"], y=days["added"], name="added to the queue", marker_color=SUSPICIOUS,
                         hovertemplate="%{x|%Y-%m-%d}: %{y:,} added<extra></extra>"))
    fig.update_layout(title=title, barmode="stack", xaxis_title="day", yaxis_title="hits",
                      legend=dict(orientation="h", y=-0.25), **LAYOUT)
    return fig
