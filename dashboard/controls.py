"""Widgets rendered from detectors' declared parameters, so a new backend needs no UI code."""

from __future__ import annotations

from typing import Any

import streamlit as st

from detectors.base import Param


def param_control(p: Param, key: str, container=st) -> Any:
    """One widget for one declared parameter, starting at its default."""
    if p.kind == "bool":
        return container.checkbox(p.name, value=bool(p.default), help=p.help, key=key)
    if p.kind == "choice":
        return container.selectbox(p.name, list(p.choices), index=list(p.choices).index(p.default), help=p.help, key=key)
    if p.kind == "int":
        return container.number_input(p.name, int(p.low), int(p.high), int(p.default), step=1, help=p.help, key=key)
    step = (p.high - p.low) / 100
    return container.number_input(p.name, float(p.low), float(p.high), float(p.default), step=step, format="%.4g",
                                  help=p.help, key=key)


def param_controls(params: tuple[Param, ...], key: str, container=st) -> dict[str, Any]:
    return {p.name: param_control(p, f"{key}-{p.name}", container) for p in params}
