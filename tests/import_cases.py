"""Files written the way banks, card processors, point-of-sale systems and spreadsheets write them,
each with the values an import must store (worked out by hand: times in the dataset's zone,
amounts, text) or the row, column and reason it must be refused with.

The same cases run in-process (tests/unit/test_import_conventions.py), through the Data page
(tests/pages/test_app_import_conventions.py) and through `centinela import`
(tests/e2e/test_import_conventions_cli.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Case:
    file: str
    write: Callable[[Path], None]
    timezone: str = "America/Lima"
    decimal: str | None = None
    date_order: str | None = None
    epoch_unit: str | None = None
    sheet: str | None = None
    encoding: str = "utf-8"
    timestamp: str | None = None  # --map timestamp=...: a column, or DATE+TIME
    skip_bad_rows: bool = False
    stored: dict[str, list] = field(default_factory=dict)  # stored column -> intended values in file order
    counts: dict[str, int] = field(default_factory=dict)  # report counts that must hold
    conventions: dict[str, str] = field(default_factory=dict)  # source column -> fragment of its convention
    refused: list[str] = field(default_factory=list)  # fragments of the message (file, row, column, reason)
    page: bool = True  # False where the page cannot make the choice (its widgets only offer valid ones)

    def cli_args(self) -> list[str]:
        args = ["--timezone", self.timezone, "--encoding", self.encoding]
        for flag, value in (("--decimal", self.decimal), ("--date-order", self.date_order),
                            ("--epoch-unit", self.epoch_unit), ("--sheet", self.sheet)):
            if value:
                args += [flag, value]
        if self.timestamp:
            args += ["--map", f"timestamp={self.timestamp}"]
        if self.skip_bad_rows:
            args.append("--skip-bad-rows")
        return args


def text(content: str, encoding: str = "utf-8") -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content.encode(encoding))


def raw(content: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content)


def parquet(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda path: frame.to_parquet(path, index=False)


def workbook(sheets: dict[str, list[list]]) -> Callable[[Path], None]:
    """An .xlsx whose cells keep their Python types: datetimes and dates become date cells, times
    time cells, numbers number cells, strings text."""

    def write(path: Path) -> None:
        import xlsxwriter

        book = xlsxwriter.Workbook(str(path))
        formats = {dt.datetime: book.add_format({"num_format": "dd/mm/yyyy hh:mm:ss"}),
                   dt.date: book.add_format({"num_format": "dd/mm/yyyy"}),
                   dt.time: book.add_format({"num_format": "hh:mm:ss"})}
        for name, rows in sheets.items():
            sheet = book.add_worksheet(name)
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    if isinstance(value, dt.datetime | dt.date | dt.time):
                        kind = next(k for k in (dt.datetime, dt.date, dt.time) if isinstance(value, k))
                        sheet.write_datetime(r, c, value, formats[kind])
                    elif isinstance(value, str):
                        sheet.write_string(r, c, value)
                    elif value is not None:
                        sheet.write_number(r, c, value)
        book.close()

    return write


CP1252_PLACES = ["Huánuco", "Pizzería D’Ángelo", "Café “Ñaña” €5"]  # ’ “ ” € exist in Windows-1252, not Latin-1

CASES: dict[str, Case] = {
    # --- time zones -------------------------------------------------------------------------
    "offsets to Lima": Case("offsets.csv", text(
        "timestamp,amount\n2024-01-01 10:00:00+05:00,1\n2024-03-10 02:30:00-05:00,2\n2024-01-31T15:00:00Z,3\n"
        "2024-01-01 10:00:00 Europe/Madrid,4\n2024-01-01 10:00:00,5\n2024-02-01T08:15:00.250-0300,6\n"),
        stored={"ts": ["2024-01-01 00:00:00", "2024-03-10 02:30:00", "2024-01-31 10:00:00", "2024-01-01 04:00:00",
                       "2024-01-01 10:00:00", "2024-02-01 06:15:00.250000"], "amount": [1, 2, 3, 4, 5, 6]},
        counts={"converted_offsets": 5}, conventions={"timestamp": "converted to America/Lima"}),
    "offsets to Madrid": Case("madrid.csv", text(
        "timestamp,amount\n2024-01-01 10:00:00+05:00,1\n2024-07-01T12:00:00Z,2\n2024-07-01 09:00,3\n"),
        timezone="Europe/Madrid",
        stored={"ts": ["2024-01-01 06:00:00", "2024-07-01 14:00:00", "2024-07-01 09:00:00"], "amount": [1, 2, 3]},
        counts={"converted_offsets": 2}, conventions={"timestamp": "converted to Europe/Madrid"}),
    "zone-aware parquet": Case("zones.parquet", parquet(pd.DataFrame({
        "ts": pd.to_datetime(["2024-01-01 10:00", "2024-07-01 10:00"]).tz_localize("Europe/Madrid"),
        "utc_time": pd.to_datetime(["2024-01-01 15:00", "2024-07-01 15:00"]).tz_localize("UTC"),
        "amount": [1.5, 2.5]})),
        stored={"ts": ["2024-01-01 04:00:00", "2024-07-01 03:00:00"], "amount": [1.5, 2.5]},
        counts={"converted_offsets": 2}, conventions={"ts": "zone-aware timestamps in the file, converted to America/Lima"}),
    "zone-aware parquet, utc column": Case("utc.parquet", parquet(pd.DataFrame({
        "utc_time": pd.to_datetime(["2024-01-01 15:00", "2024-07-01 15:00"]).tz_localize("UTC"), "amount": [1.5, 2.5]})),
        timestamp="utc_time", stored={"ts": ["2024-01-01 10:00:00", "2024-07-01 10:00:00"]},
        counts={"converted_offsets": 2}),
    "a local time that does not exist": Case("gap.csv", text(
        "timestamp,amount\n2024-03-09 23:00,1\n2024-03-10 02:30:00,2\n"), timezone="America/New_York",
        refused=["gap.csv", "row 3", "column 'timestamp'", "does not exist in America/New_York",
                 "clocks jumped from 02:00 to 03:00"]),
    "a local time that occurs twice": Case("twice.csv", text(
        "timestamp,amount\n2024-11-03 01:30:00,1\n2024-11-03 03:00,2\n"), timezone="America/New_York",
        refused=["twice.csv", "row 2", "column 'timestamp'", "occurs twice in America/New_York", "no UTC offset"]),
    "daylight-saving rows skipped": Case("dst.csv", text(
        "timestamp,amount\n2024-03-10 02:30:00,1\n2024-06-01 12:00,2\n2024-11-03 01:30:00,3\n2024-11-03 01:30:00-05:00,4\n"),
        timezone="America/New_York", skip_bad_rows=True,
        stored={"ts": ["2024-06-01 12:00:00", "2024-11-03 01:30:00"], "amount": [2, 4]},
        counts={"skipped_rows": 2, "converted_offsets": 1}),
    "an unknown time zone": Case("zone.csv", text("timestamp,amount\n2024-01-01,1\n"), timezone="Mars/Olympus",
                                 refused=["unknown time zone 'Mars/Olympus'", "IANA"], page=False),
    # --- number conventions -------------------------------------------------------------------
    "decimal commas": Case("comas.csv", text(
        'fecha;monto\n2024-01-01;1.234,56\n2024-01-02;-12,50\n2024-01-03;(3,00)\n2024-01-04;S/ 7\n'
        '2024-01-05;"1 234 567,5"\n2024-01-06;12,50-\n'),
        stored={"amount": [1234.56, -12.5, -3.0, 7.0, 1234567.5, -12.5]}, counts={"refunds": 3},
        conventions={"monto": "decimal separator ','"}),
    "decimal points with thousands": Case("points.csv", text(
        'timestamp,amount\n2024-01-01,"1,234.56"\n2024-01-02,-12.50\n2024-01-03,USD 3.5\n2024-01-04,"1,000,000.25"\n'),
        stored={"amount": [1234.56, -12.5, 3.5, 1000000.25]}, counts={"refunds": 1},
        conventions={"amount": "decimal separator '.'"}),
    "amounts that could be read either way": Case("either.csv", text("timestamp,amount\n2024-01-01,1.500\n2024-01-02,2.250\n"),
        refused=["either.csv", "row 2", "column 'amount'", "could be read either way", "'1.500' is 1500",
                 "--decimal"]),
    "either way, decimal comma set": Case("either.csv", text("timestamp,amount\n2024-01-01,1.500\n2024-01-02,2.250\n"),
        decimal=",", stored={"amount": [1500.0, 2250.0]}, conventions={"amount": "decimal separator ',', thousands '.' or space (as set)"}),
    "either way, decimal point set": Case("either.csv", text("timestamp,amount\n2024-01-01,1.500\n2024-01-02,2.250\n"),
        decimal=".", stored={"amount": [1.5, 2.25]}),
    "both decimal conventions in one column": Case("mixed.csv", text(
        'timestamp,amount\n2024-01-01,10\n2024-01-02,"1.234,56"\n2024-01-03,12.50\n'),
        refused=["mixed.csv", "row 3", "column 'amount'", "',' as the decimal separator (row 3 ('1.234,56'))",
                 "'.' as the decimal separator (row 4 ('12.50'))"]),
    "a value against the set separator": Case("against.csv", text("timestamp,amount\n2024-01-01,\"1,5\"\n2024-01-02,2.75\n"),
        decimal=",", refused=["against.csv", "row 3", "column 'amount'",
                              "'2.75' is written with '.' as the decimal separator, but this column uses ','"]),
    "comma decimals in coordinates and extras": Case("coords.csv", text(
        'fecha;monto;latitud;longitud;saldo\n2024-01-01;10;-12,0464;-77,0428;1.500,25\n2024-01-02;20;-13,532;-71,967;20,5\n'),
        stored={"lat": [-12.0464, -13.532], "lon": [-77.0428, -71.967], "saldo": [1500.25, 20.5]}),
    # --- refunds --------------------------------------------------------------------------------
    "refunds and reversals": Case("refunds.csv", text(
        "transaction_id,timestamp,amount,customer_id\nT1,2024-01-01 10:00,100.00,C1\nT2,2024-01-02 10:00,-100.00,C1\n"
        "T3,2024-01-03 10:00,-S/ 35.10,C2\nT4,2024-01-04 10:00,55.25,C2\n"),
        stored={"amount": [100.0, -100.0, -35.1, 55.25], "transaction_id": ["T1", "T2", "T3", "T4"]},
        counts={"refunds": 2}),
    # --- timestamp shapes ----------------------------------------------------------------------
    "unix seconds": Case("epoch.csv", text("timestamp,amount\n1706713200,1\n1706716800,2\n1719835200,3\n"),
        stored={"ts": ["2024-01-31 10:00:00", "2024-01-31 11:00:00", "2024-07-01 07:00:00"]},
        counts={"converted_offsets": 3}, conventions={"timestamp": "Unix seconds (detected"}),
    "unix milliseconds": Case("epoch_ms.csv", text("timestamp,amount\n1706713200000,1\n1706716800123,2\n"),
        stored={"ts": ["2024-01-31 10:00:00", "2024-01-31 11:00:00.123000"]},
        conventions={"timestamp": "Unix milliseconds (detected"}),
    "unix seconds, as set": Case("epoch_set.csv", text("timestamp,amount\n1706713200,1\n1706716800.5,2\n"),
        epoch_unit="s", stored={"ts": ["2024-01-31 10:00:00", "2024-01-31 11:00:00.500000"]},
        conventions={"timestamp": "Unix seconds (as set)"}),
    "unix seconds set on dates": Case("epoch_wrong.csv", text("timestamp,amount\n2024-01-01,1\n"), epoch_unit="s",
        refused=["epoch_wrong.csv", "row 2", "column 'timestamp'", "'2024-01-01' is not a Unix time in seconds"]),
    "date and time columns": Case("fecha_hora.csv", text(
        "fecha,hora,monto\n31/01/2024,10:30,1\n01/02/2024,23:59:59,2\n02/02/2024,07:05 PM,3\n"),
        stored={"ts": ["2024-01-31 10:30:00", "2024-02-01 23:59:59", "2024-02-02 19:05:00"]},
        conventions={"fecha": "time of day from column 'hora'"}),
    "date and time columns, mapped": Case("split.csv", text(
        "dia,hora_operacion,importe\n2024-01-31,10:30:00,1\n2024-02-01,08:00:00,2\n"), timestamp="dia+hora_operacion",
        stored={"ts": ["2024-01-31 10:30:00", "2024-02-01 08:00:00"], "amount": [1, 2]}),
    "a bad time of day": Case("bad_hora.csv", text("fecha,hora,monto\n2024-01-31,10:30,1\n2024-02-01,25:99,2\n"),
        refused=["bad_hora.csv", "row 3", "column 'hora'", "'25:99' is not a time of day"]),
    "day-first dates": Case("dmy.csv", text("fecha,monto\n31/01/2024 10:00,1\n05/02/2024 11:00,2\n"),
        stored={"ts": ["2024-01-31 10:00:00", "2024-02-05 11:00:00"]},
        conventions={"fecha": "day-first (dd/mm/yyyy) dates (detected, e.g. row 2 ('31/01/2024 10:00'))"}),
    "month-first dates": Case("mdy.csv", text("date,amount\n01/31/2024 10:00 PM,1\n02/05/2024 11:00 AM,2\n"),
        stored={"ts": ["2024-01-31 22:00:00", "2024-02-05 11:00:00"]},
        conventions={"date": "month-first (mm/dd/yyyy) dates (detected"}),
    "dates that could be either": Case("either_dates.csv", text("date,amount\n05/02/2024,1\n06/02/2024,2\n"),
        refused=["either_dates.csv", "row 2", "column 'date'", "could be day-first or month-first", "--date-order"]),
    "dates either way, month-first set": Case("either_dates.csv", text("date,amount\n05/02/2024,1\n06/02/2024,2\n"),
        date_order="mdy", stored={"ts": ["2024-05-02 00:00:00", "2024-06-02 00:00:00"]},
        conventions={"date": "month-first (mm/dd/yyyy) dates (as set)"}),
    "both date orders in one column": Case("mixed_dates.csv", text("date,amount\n31/01/2024,1\n01/31/2024,2\n"),
        refused=["mixed_dates.csv", "row 2", "column 'date'", "day-first dates (row 2 ('31/01/2024'))",
                 "month-first dates (row 3 ('01/31/2024'))"]),
    # --- CSV dialects and encodings --------------------------------------------------------------
    "quoted delimiters and line breaks": Case("quoted.csv", text(
        'timestamp,amount,merchant,note\n2024-01-01,1,"Chifa Wa Lok, Jr. Paruro","first line\nsecond line, with ""quotes"""\n'
        '2024-01-02,2,"Bodega ""La Palma""",x\n'),
        stored={"merchant_id": ["Chifa Wa Lok, Jr. Paruro", 'Bodega "La Palma"'],
                "note": ['first line\nsecond line, with "quotes"', "x"]}),
    "semicolons, CRLF and a byte-order mark": Case("bom.csv", text(
        "\ufefffecha;monto;ciudad\r\n2024-01-01 10:00;10,5;Arequipa\r\n2024-01-02 11:00;3;Cusco\r\n"),
        stored={"ts": ["2024-01-01 10:00:00", "2024-01-02 11:00:00"], "amount": [10.5, 3.0], "city": ["Arequipa", "Cusco"]}),
    "tabs": Case("tabs.tsv", text("timestamp\tamount\tcity\n2024-01-01\t1.25\tPiura\n"),
                 stored={"amount": [1.25], "city": ["Piura"]}),
    "pipes": Case("pipes.txt", text("timestamp|amount|city\n2024-01-01|1.25|Iquitos\n"),
                  stored={"amount": [1.25], "city": ["Iquitos"]}),
    "windows-1252": Case("ventas.csv", text("fecha;monto;ciudad\n" + "".join(
        f"2024-01-0{i + 1};{i + 1},50;{place}\n" for i, place in enumerate(CP1252_PLACES)), "cp1252"),
        encoding="windows-1252", stored={"city": CP1252_PLACES, "amount": [1.5, 2.5, 3.5]}),
    "windows-1252 read as utf-8": Case("ventas.csv", text("fecha;monto;ciudad\n2024-01-01;1;Huánuco\n", "cp1252"),
        refused=["ventas.csv", "row 2", "not valid UTF-8", "windows-1252"]),
    # --- Excel -------------------------------------------------------------------------------------
    "excel workbook, second sheet": Case("libro.xlsx", workbook({
        "Resumen": [["notes"], ["totals are on the other sheet"]],
        "Ventas": [["id", "fecha", "hora", "monto", "ciudad", "saldo"],
                   [101, dt.date(2024, 1, 31), dt.time(10, 30), 1234.56, "Huánuco", "1.500,25"],
                   [102, dt.date(2024, 2, 1), dt.time(23, 5, 9), -12.5, "Cusco", "20,5"]]}),
        sheet="Ventas",
        stored={"transaction_id": ["101", "102"], "ts": ["2024-01-31 10:30:00", "2024-02-01 23:05:09"],
                "amount": [1234.56, -12.5], "city": ["Huánuco", "Cusco"], "saldo": [1500.25, 20.5]},
        counts={"refunds": 1}, conventions={"fecha": "time of day from column 'hora'"}),
    "excel date-times and text dates": Case("export.xlsx", workbook({
        "Hoja1": [["timestamp", "amount", "customer_id"],
                  [dt.datetime(2024, 3, 1, 9, 15, 30), 10.0, "C1"], [dt.datetime(2024, 3, 2, 18, 0), 20.25, "C2"]]}),
        stored={"ts": ["2024-03-01 09:15:30", "2024-03-02 18:00:00"], "amount": [10.0, 20.25],
                "customer_id": ["C1", "C2"]}),
    "excel sheet that does not exist": Case("libro.xlsx", workbook({"Ventas": [["timestamp", "amount"], ["2024-01-01", 1]]}),
        sheet="Julio", refused=["libro.xlsx", "no sheet 'Julio'", "Ventas"], page=False),
}


def stored_values(conn, dataset, columns: list[str]) -> dict[str, list]:
    """The dataset's stored values per column, in file order; timestamps as text (microseconds
    only when there are any), so they compare exactly with the intended wall times."""
    from data.db import quote_ident

    exprs = []
    for column in columns:
        if column == "ts":
            exprs.append("CASE WHEN epoch_us(ts) % 1000000 = 0 THEN strftime(ts, '%Y-%m-%d %H:%M:%S') "
                         "ELSE strftime(ts, '%Y-%m-%d %H:%M:%S.%f') END")
        else:
            exprs.append(quote_ident(column))
    rows = conn.execute(f"SELECT {', '.join(exprs)} FROM {dataset.table} ORDER BY tx_row").fetchall()
    return {column: [row[i] for row in rows] for i, column in enumerate(columns)}


def assert_stored(conn, dataset, case: Case) -> None:
    """Every intended value is what was stored: numbers to 1e-9, text and times exactly."""
    import pytest

    found = stored_values(conn, dataset, list(case.stored))
    for column, intended in case.stored.items():
        if intended and isinstance(intended[0], int | float):
            assert found[column] == pytest.approx(intended, abs=1e-9), (column, found[column])
        else:
            assert found[column] == intended, (column, found[column])
    assert dataset.timezone == case.timezone


def assert_report(report: dict, case: Case) -> None:
    """The import report's counts and per-column conventions say what was done."""
    counts = {**report.get("counts", {}), "skipped_rows": report.get("rows_read", 0) - report.get("rows_stored", report.get("rows_read", 0))}
    for key, value in case.counts.items():
        assert counts.get(key) == value, (key, counts)
    conventions = {c["column"]: c["convention"] for c in report["columns"]}
    for column, fragment in case.conventions.items():
        assert fragment in conventions[column], (column, conventions[column])
