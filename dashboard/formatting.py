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


def fmt_pen_short(value: float | None) -> str:
    """Soles in a metric-sized space: S/ 106.83 M, S/ 48.2 K, S/ 512.40."""
    if value is None:
        return "—"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"S/ {value / size:,.2f} {suffix}"
    return fmt_pen(value)


def fmt_hours(hours: float | None) -> str:
    """A wait in hours, or in days past two days."""
    if hours is None:
        return "—"
    return f"{hours:,.1f} h" if hours < 48 else f"{hours / 24:,.1f} days"
