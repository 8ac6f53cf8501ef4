"""Numbers as people read them: thousands separators, soles, percentages."""

from __future__ import annotations

from datetime import datetime


def fmt_int(value: int | float | None) -> str:
    return "—" if value is None else f"{int(value):,}"


def fmt_pen(value: float | None) -> str:
    return "—" if value is None else f"S/ {value:,.2f}"


def fmt_pct(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def fmt_ts(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M")


def fmt_bytes(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} GB"
