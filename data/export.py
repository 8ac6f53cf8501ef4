"""CSV for people who open it in a spreadsheet.

A cell that starts with =, +, -, @, a tab or a carriage return is a formula to Excel, LibreOffice
and Google Sheets (`=HYPERLINK(...)` in a merchant name runs when an analyst opens the export).
Such text cells get a leading apostrophe, as OWASP recommends; numbers are left as numbers.
"""

from __future__ import annotations

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells can never be read as spreadsheet formulas."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_numeric_dtype(out[column]) or pd.api.types.is_datetime64_any_dtype(out[column]):
            continue
        values = out[column]
        text = values.astype("string")
        risky = text.str.startswith(FORMULA_STARTS).fillna(False).astype(bool)
        if risky.any():
            out[column] = values.astype(object).where(~risky, "'" + text.astype(object))
    out.columns = [("'" + c) if isinstance(c, str) and c.startswith(FORMULA_STARTS) else c for c in out.columns]
    return out


def safe_csv(frame: pd.DataFrame) -> bytes:
    """`frame` as UTF-8 CSV (with a BOM so Excel reads accents), formulas neutralized.

    Pages hand these bytes to `st.download_button`, not a callable: Streamlit 1.67's deferred
    download (`data=callable`) left 2 of 7 clicks spinning with no file, in a bare three-button app
    in Chromium as well (the response to the browser's request never came), while the same buttons
    with bytes downloaded 7 of 7; the frames the pages download are the ones they show, so making
    the CSV on every run costs milliseconds."""
    return neutralize_formulas(frame).to_csv(index=False).encode("utf-8-sig")
