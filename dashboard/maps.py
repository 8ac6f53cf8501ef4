"""Maps of Peru that draw with no internet access.

Plotly's `geo` traces make the browser fetch world outlines from a CDN, and `map` traces need
a tile server; neither is reachable in many bank networks. The base map here is the bundled
`data/peru_departments.geojson` (26 departments, see tools/build_peru_geojson.py) drawn as
ordinary scatter traces on longitude/latitude axes, so it renders wherever the app does.
Street tiles are an opt-in layer for networks that reach OpenStreetMap.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import LAYOUT, NORMAL, SUSPICIOUS

BOUNDARIES = Path(__file__).resolve().parent.parent / "data" / "peru_departments.geojson"
# Peru spans about 0-18.5 S and 68.5-81.5 W; a degree of longitude there is ~0.97 of a degree of latitude.
LON_RANGE, LAT_RANGE = (-81.6, -68.4), (-18.6, 0.2)
ASPECT = float(np.cos(np.radians(9.0)))


@lru_cache(maxsize=1)
def department_outlines() -> tuple[tuple[float | None, ...], tuple[float | None, ...], tuple[str, ...]]:
    """Longitudes and latitudes of every department ring, rings separated by None; and the names."""
    collection = json.loads(BOUNDARIES.read_text(encoding="utf-8"))
    lons: list[float | None] = []
    lats: list[float | None] = []
    names = []
    for feature in collection["features"]:
        names.append(feature["properties"]["name"])
        for polygon in feature["geometry"]["coordinates"]:
            for ring in polygon:
                lons.extend(p[0] for p in ring)
                lats.extend(p[1] for p in ring)
                lons.append(None)
                lats.append(None)
    return tuple(lons), tuple(lats), tuple(names)


def _base_map(title: str, height: int) -> go.Figure:
    lons, lats, _ = department_outlines()
    fig = go.Figure(go.Scatter(
        x=lons, y=lats, mode="lines", fill="toself", fillcolor="#f2f0eb", line=dict(color="#9a9a9a", width=0.8),
        hoverinfo="skip", showlegend=False, name="departments"))
    fig.update_xaxes(range=LON_RANGE, visible=False)
    fig.update_yaxes(range=LAT_RANGE, visible=False, scaleanchor="x", scaleratio=1 / ASPECT)
    fig.update_layout(title=title, **{**LAYOUT, "height": height}, plot_bgcolor="#dfe9f3")
    return fig


def alert_map(places: pd.DataFrame, height: int = 620) -> go.Figure:
    """Cities as circles sized by transactions and coloured by alert rate, on Peru's departments."""
    fig = _base_map("Where alerts happen (circle size: transactions; colour: alert rate)", height)
    if places.empty:
        return fig
    size = 8 + 42 * np.sqrt(places["transactions"] / places["transactions"].max())
    fig.add_trace(go.Scatter(
        x=places["lon"], y=places["lat"], mode="markers", name="cities",
        marker=dict(size=size, color=places["alert_rate"], colorscale="YlOrRd", cmin=0,
                    cmax=max(float(places["alert_rate"].max()), 1e-9), line=dict(color="#555", width=0.6),
                    colorbar=dict(title="alert rate", tickformat=".1%"), opacity=0.85),
        customdata=np.column_stack([places["city"], places["transactions"], places["alerts"], places["alert_rate"]]),
        hovertemplate="<b>%{customdata[0]}</b><br>%{customdata[1]:,} transactions<br>%{customdata[2]:,} alerts "
                      "(%{customdata[3]:.2%})<extra></extra>",
    ))
    return fig


def case_path_map(usual: tuple[float, float] | None, here: tuple[float, float] | None, places_seen: pd.DataFrame | None = None,
                  height: int = 420) -> go.Figure:
    """The customer's usual location (mean of earlier transactions) and this transaction, joined."""
    fig = _base_map("From the customer's usual location to this transaction", height)
    if usual is not None and here is not None:
        fig.add_trace(go.Scatter(x=[usual[1], here[1]], y=[usual[0], here[0]], mode="lines",
                                 line=dict(color=SUSPICIOUS, width=2, dash="dash"), hoverinfo="skip", showlegend=False))
    if usual is not None:
        fig.add_trace(go.Scatter(x=[usual[1]], y=[usual[0]], mode="markers", name="usual location",
                                 marker=dict(size=13, color=NORMAL, symbol="circle"),
                                 hovertemplate="usual location<br>%{y:.3f}, %{x:.3f}<extra></extra>"))
    if here is not None:
        fig.add_trace(go.Scatter(x=[here[1]], y=[here[0]], mode="markers", name="this transaction",
                                 marker=dict(size=15, color=SUSPICIOUS, symbol="x"),
                                 hovertemplate="this transaction<br>%{y:.3f}, %{x:.3f}<extra></extra>"))
    fig.update_layout(legend=dict(orientation="h", y=-0.02))
    return fig


def tile_map(places: pd.DataFrame, height: int = 620) -> go.Figure:
    """The same circles on OpenStreetMap tiles (the browser must reach tile.openstreetmap.org)."""
    fig = go.Figure(go.Scattermap(
        lat=places["lat"], lon=places["lon"], mode="markers",
        marker=dict(size=8 + 42 * np.sqrt(places["transactions"] / max(places["transactions"].max(), 1)),
                    color=places["alert_rate"], colorscale="YlOrRd", colorbar=dict(title="alert rate", tickformat=".1%")),
        text=places["city"], hovertemplate="<b>%{text}</b><extra></extra>"))
    fig.update_layout(map=dict(style="open-street-map", center=dict(lat=-9.2, lon=-75.0), zoom=4.2),
                      **{**LAYOUT, "height": height})
    return fig
