"""The same 50 transactions, written in thirteen dialects and shapes real exports come in, import
to identical stored values: the intended ones (times as wall time in America/Lima, amounts to
1e-9, text byte for byte)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from application import datasets as app_datasets
from data.conventions import ImportOptions
from data.ingest import inspect_file
from tests.conftest import as_user
from tests.import_cases import stored_values, workbook

LIMA_OFFSET = dt.timedelta(hours=-5)  # Lima has kept UTC-5 since 1994
OFFSETS = ["+01:00", "-03:00", "+05:30", "-05:00", "+00:00", "+09:00", "-08:00"]
# Text a fraud team meets: accents and ñ, a comma, quotes, a typographic apostrophe, a line break.
MERCHANTS = ["Chifa Wa Lok, Jr. Paruro", 'Bodega "La Palma"', "Pizzería D’Ángelo", "Café Ñaña", "Pollería\nEl Rancho"]
CITIES = ["Lima", "Cusco", "Huánuco", "Arequipa", "Piura", "Iquitos", "Chiclayo", "Ñaña"]
COLUMNS = ["transaction_id", "ts", "amount", "customer_id", "merchant_id", "city"]


def fifty() -> pd.DataFrame:
    """50 transactions (seeded): wall times in Lima, amounts with two decimals from refunds of a few
    hundred to purchases over a million (so every grouping shape appears)."""
    rng = np.random.default_rng(18)
    seconds = np.sort(rng.integers(0, 150 * 86_400, 50))
    ts = [dt.datetime(2024, 1, 1) + dt.timedelta(seconds=int(s)) for s in seconds]
    cents = rng.integers(1, 150_000_000, 50)
    cents[::7] = -rng.integers(100, 90_000, len(cents[::7]))  # refunds and reversals
    return pd.DataFrame({
        "transaction_id": [f"TX-{i:03d}" for i in range(50)], "ts": ts, "amount": cents / 100,
        "customer_id": [f"C{int(c)}" for c in rng.integers(0, 12, 50)],
        "merchant_id": [MERCHANTS[int(m)] for m in rng.integers(0, len(MERCHANTS), 50)],
        "city": [CITIES[int(c)] for c in rng.integers(0, len(CITIES), 50)],
    })


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts - LIMA_OFFSET


def _comma(amount: float, thousands: str = ".") -> str:
    """1234567.5 -> 1.234.567,50 (and -12.5 -> -12,50)."""
    text = f"{abs(amount):,.2f}".replace(",", "_").replace(".", ",").replace("_", thousands)
    return ("-" if amount < 0 else "") + text


def _quote(value: str, delimiter: str) -> str:
    if any(ch in value for ch in (delimiter, '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv(rows: list[list[str]], delimiter: str = ",", newline: str = "\n") -> str:
    return "".join(delimiter.join(_quote(v, delimiter) for v in row) + newline for row in rows)


def _text_writer(content: str, encoding: str) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content.encode(encoding))


def dialects(frame: pd.DataFrame) -> dict[str, tuple[str, Callable[[Path], None], dict]]:
    """name -> (file name, writer, import settings: encoding, ImportOptions fields, --map timestamp)."""
    rows = list(frame.itertuples(index=False))
    header = ["transaction_id", "timestamp", "amount", "customer_id", "merchant_id", "city"]

    def table(ts_text, amount_text, head=header):
        return [head] + [[r.transaction_id, ts_text(r), amount_text(r), r.customer_id, r.merchant_id, r.city]
                         for i, r in enumerate(rows)]

    iso = table(lambda r: r.ts.strftime("%Y-%m-%d %H:%M:%S"), lambda r: f"{r.amount:.2f}")
    offsets = [header] + [[r.transaction_id, (_utc(r.ts) + _offset(OFFSETS[i % len(OFFSETS)])).strftime(
        "%Y-%m-%dT%H:%M:%S") + OFFSETS[i % len(OFFSETS)], f"{r.amount:.2f}", r.customer_id, r.merchant_id, r.city]
        for i, r in enumerate(rows)]
    split = [["transaction_id", "fecha", "hora", "monto", "cliente_id", "comercio", "ciudad"]] + [
        [r.transaction_id, r.ts.strftime("%d/%m/%Y"), r.ts.strftime("%H:%M:%S"),
         ("-S/ " if r.amount < 0 else "S/ ") + _comma(abs(r.amount)), r.customer_id, r.merchant_id, r.city] for r in rows]
    us = table(lambda r: r.ts.strftime("%m/%d/%Y %I:%M:%S %p"), lambda r: f"{r.amount:,.2f}")
    utc_frame = frame.assign(ts=pd.to_datetime([_utc(t) for t in frame["ts"]]).tz_localize("UTC"))
    cells = [header] + [[r.transaction_id, r.ts, r.amount, r.customer_id, r.merchant_id, r.city] for r in rows]
    split_cells = [["transaction_id", "fecha", "hora", "monto", "customer_id", "merchant_id", "city"]] + [
        [r.transaction_id, r.ts.date(), r.ts.time(), _comma(r.amount), r.customer_id, r.merchant_id, r.city] for r in rows]
    madrid = pd.to_datetime([_utc(t) for t in frame["ts"]]).tz_localize("UTC").tz_convert("Europe/Madrid")
    named = [header] + [[r.transaction_id, m.strftime("%Y-%m-%d %H:%M:%S") + " Europe/Madrid", f"{r.amount:.2f}",
                         r.customer_id, r.merchant_id, r.city] for r, m in zip(rows, madrid, strict=True)]
    return {
        "utf-8 csv, ISO times": ("plain.csv", _text_writer(_csv(iso), "utf-8"), {}),
        "windows-1252, semicolons, CRLF, day-first, decimal commas": ("banco.csv", _text_writer(_csv(
            table(lambda r: r.ts.strftime("%d/%m/%Y %H:%M:%S"), lambda r: _comma(r.amount)), ";", "\r\n"), "cp1252"),
            {"encoding": "windows-1252"}),
        "tabs, BOM, month-first with AM/PM, thousands commas": ("processor.tsv", _text_writer(
            "\ufeff" + _csv(us, "\t"), "utf-8"), {}),
        "pipes, UTC with Z": ("api.txt", _text_writer(_csv(table(
            lambda r: _utc(r.ts).strftime("%Y-%m-%dT%H:%M:%SZ"), lambda r: f"{r.amount:.2f}"), "|"), "utf-8"), {}),
        "offsets from around the world": ("world.csv", _text_writer(_csv(offsets), "utf-8"), {}),
        "zone names": ("madrid.csv", _text_writer(_csv(named), "utf-16"), {}),
        "unix seconds": ("log.csv", _text_writer(_csv(table(
            lambda r: str(int(_utc(r.ts).replace(tzinfo=dt.UTC).timestamp())), lambda r: f"{r.amount:.2f}")), "utf-8"), {}),
        "unix milliseconds": ("log_ms.csv", _text_writer(_csv(table(
            lambda r: str(int(_utc(r.ts).replace(tzinfo=dt.UTC).timestamp()) * 1000), lambda r: repr(r.amount))), "utf-8"), {}),
        "fecha and hora, S/ amounts": ("fecha_hora.csv", _text_writer(_csv(split, ";"), "utf-8"), {}),
        "parquet, zone-aware UTC": ("utc.parquet", lambda p: utc_frame.rename(columns={"ts": "timestamp"}).to_parquet(p), {}),
        "parquet, naive times": ("naive.parquet", lambda p: frame.rename(columns={"ts": "timestamp"}).to_parquet(p), {}),
        "excel, date-time cells": ("libro.xlsx", workbook({"Ventas": cells}), {}),
        "excel, date and time cells, text amounts, second sheet": ("libro2.xlsx", workbook(
            {"Resumen": [["see the other sheet"]], "Detalle": split_cells}), {"sheet": "Detalle"}),
    }


def _offset(text: str) -> dt.timedelta:
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    return sign * dt.timedelta(hours=hours, minutes=minutes)


FRAME = fifty()
DIALECTS = dialects(FRAME)


def test_there_are_at_least_ten_dialects_and_the_transactions_exercise_them():
    assert len(DIALECTS) >= 10
    assert (FRAME["amount"] < 0).sum() >= 5 and (FRAME["amount"].abs() >= 1_000_000).any()
    assert any("\n" in m for m in FRAME["merchant_id"]) and any("," in m for m in FRAME["merchant_id"])
    assert (FRAME["ts"].map(lambda t: t.day) > 12).any()  # day-first and month-first are told apart


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_every_dialect_stores_the_intended_values(conn, tmp_path, dialect):
    file_name, write, settings = DIALECTS[dialect]
    path = tmp_path / file_name
    write(path)
    info = inspect_file(conn, path, encoding=settings.get("encoding", "utf-8"), sheet=settings.get("sheet"))
    result = app_datasets.import_dataset(as_user(conn), path, "fifty", info.guessed_mapping(), encoding=info.encoding,
                                         options=ImportOptions(sheet=settings.get("sheet")), features=False)
    stored = stored_values(conn, result.dataset, COLUMNS)
    assert stored["transaction_id"] == FRAME["transaction_id"].tolist()
    assert stored["ts"] == [t.strftime("%Y-%m-%d %H:%M:%S") for t in FRAME["ts"]]
    assert stored["amount"] == pytest.approx(FRAME["amount"].tolist(), abs=1e-9)
    for column in ("customer_id", "merchant_id", "city"):
        assert stored[column] == FRAME[column].tolist(), column
    assert result.report.counts["refunds"] == int((FRAME["amount"] < 0).sum())
