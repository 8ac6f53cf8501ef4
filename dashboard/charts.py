"""Plotly figures for pages: pure functions, data in, figure out (nothing is queried here)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

SUSPICIOUS = "#b3261e"
NORMAL = "#4a6fa5"
LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, template="plotly_white")


def score_histogram(scores: np.ndarray, threshold: float, bins: int = 80) -> go.Figure:
    """Histogram of scores (binned here, so a million scores send 80 bars) with the threshold."""
    counts, edges = np.histogram(scores, bins=bins)
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
