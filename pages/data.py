"""Data: look at the active dataset, import files, generate synthetic data, manage datasets."""

from __future__ import annotations

import zlib
from datetime import date
from pathlib import Path

import streamlit as st

from application import database_sources as source_actions
from application import datasets as actions
from application import scaleout as scaleout_actions
from dashboard.actions import act, page_context
from dashboard.cached import overview_of
from dashboard.formatting import fmt_bytes, fmt_int, fmt_pct, fmt_ts
from dashboard.mapping_editor import DECIMAL_CHOICES, EPOCH_CHOICES, ORDER_CHOICES, mapping_editor
from dashboard.shell import page_setup
from dashboard.state import active_dataset, flash, set_active_dataset, show_flashes
from dashboard.uploads import discard_upload, stage_upload
from data.conventions import DEFAULT_TIMEZONE, ImportOptions, timezone_names
from data.database_sources import describe_problem, redact
from data.datasets import list_datasets, sample_rows
from data.errors import UserError
from data.export import safe_csv
from data.features import DEFAULT_LABEL_DELAY_DAYS, feature_catalogue
from data.import_folder import import_dir, list_spark_outputs
from data.import_folder import list_files as list_server_files
from data.import_folder import resolve as resolve_server_file
from data.ingest import ENCODINGS, detect_conventions, inspect_file
from data.synthetic import SyntheticConfig

PAGE_ROWS = 50


def _column_line(column: str, time_column: str | None, role: str, convention: str) -> str:
    # Markdown list item; backticks keep column names from being read as markup.
    name = f"`{column}`" + (f" + `{time_column}`" if time_column else "")
    return f"- {name} ({role}): {convention.replace('$', chr(92) + '$')}"  # '$' would start LaTeX


def import_report(report: dict, stored: int) -> None:
    """What the import did: how each column was read, the counts, the rows left out and why."""
    counts = report.get("counts", {})
    where = [report.get("file"), (report.get("format") or "").upper(), report.get("encoding"),
             f"delimiter {report['delimiter']!r}" if report.get("delimiter") else None,
             f"sheet {report['sheet']!r}" if report.get("sheet") else None,
             f"times in {report['timezone']}" if report.get("timezone") else None]
    st.caption(" · ".join(w for w in where if w))
    m1, m2, m3, m4, m5 = st.columns(5)
    m1.metric("Rows read", fmt_int(report.get("rows_read", stored)))
    m2.metric("Rows stored", fmt_int(stored))
    m3.metric("Rows left out", fmt_int(report.get("rows_read", stored) - stored))
    m4.metric("Refunds", fmt_int(counts.get("refunds", 0)), help="Negative amounts: stored as refunds or reversals, "
              "and kept out of the purchase-amount features.")
    m5.metric("Times converted", fmt_int(counts.get("converted_offsets", 0)),
              help="Timestamps that carried their own UTC offset, Z, zone name or Unix time, converted to the "
              "dataset's time zone.")
    if report.get("columns"):
        st.markdown("**How each column was read**")
        st.markdown("\n".join(
            _column_line(c["column"], c.get("time_column"), c["role"], c["convention"])
            + "".join(f" · {k.replace('_', ' ')}: {v:,}" for k, v in c.get("counts", {}).items())
            for c in report["columns"]))
    for note in report.get("notes", []):
        st.info(note)
    if report.get("problems"):
        st.markdown("**Values that did not parse**")
        st.dataframe(
            [{"column": p["column"], "role": p["role"], "why": p.get("problem", ""), "values": p["count"],
              "first rows": ", ".join(f"{r:,}" for r in p["rows"]), "first value": p["value"],
              "what happened": p["action"]} for p in report["problems"]],
            hide_index=True, column_config={"why": st.column_config.TextColumn(width="large")})


def _imported(done: actions.Created) -> None:
    discard_upload()
    for note in done.report.notes:
        flash("info", note)
    set_active_dataset(done.dataset.name)

page_setup()
ctx = page_context()
conn = ctx.conn
dataset = active_dataset(conn)
st.title("Data")
show_flashes()
overview, importer, generator, manager = st.tabs(["Overview", "Import a file", "Generate synthetic data", "Manage datasets"])

# ---------------------------------------------------------------------------------------------
with overview:
    if dataset is None:
        st.info("There is no dataset yet. Import a file or generate synthetic data in the tabs above.")
    else:
        missing, dataset_profile, labels = overview_of(dataset)
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Rows", fmt_int(dataset.row_count))
        days = (dataset.max_ts - dataset.min_ts).days + 1 if dataset.min_ts and dataset.max_ts else None
        c2.metric("Days covered", fmt_int(days))
        c3.metric("Labelled fraud", fmt_int(labels["fraud"]) if labels else "—",
                  help="Rows marked fraudulent in the dataset's ground-truth label column." if labels
                  else "This dataset has no label column.")
        c4.metric("Fraud rate", fmt_pct(labels["fraud_rate"]) if labels else "—")
        st.caption(f"From **{fmt_ts(dataset.min_ts)}** to **{fmt_ts(dataset.max_ts)}** (time zone "
                   f"**{dataset.timezone}**) · source: {dataset.source} · created {fmt_ts(dataset.created_at)}")

        report = dataset.import_report
        skipped = report.get("rows_read", dataset.row_count) - dataset.row_count
        if report.get("columns") or report.get("notes") or report.get("problems") or skipped:
            with st.expander("Import report", expanded=bool(report.get("problems"))):
                import_report(report, dataset.row_count)

        st.subheader("Rows")
        pages = max(1, -(-dataset.row_count // PAGE_ROWS))
        page = st.number_input(f"Page (of {pages:,}, {PAGE_ROWS} rows each, in time order)", 1, pages, 1)
        rows = sample_rows(conn, dataset, PAGE_ROWS, (page - 1) * PAGE_ROWS)
        st.dataframe(rows, hide_index=True, height=300)
        st.download_button("Download this page as CSV", safe_csv(rows),
                           file_name=f"{dataset.name}-page-{page}.csv", mime="text/csv")

        left, right = st.columns(2)
        with left:
            st.subheader("Missing values")
            st.dataframe(
                missing, hide_index=True, height=320,
                column_config={"missing_pct": st.column_config.ProgressColumn("missing %", format="%.1f%%",
                                                                               min_value=0, max_value=100)},
            )
        with right:
            st.subheader("Profile")
            st.dataframe(dataset_profile, hide_index=True, height=320,
                         column_config={"value": st.column_config.NumberColumn(format="localized")})

        st.subheader("Features")
        catalogue = feature_catalogue(conn, dataset)
        st.dataframe(catalogue, hide_index=True, column_config={"reason": st.column_config.TextColumn(width="large")})
        with st.form("features-form", border=False):
            delay = st.number_input("Label delay (days)", 0, 365, DEFAULT_LABEL_DELAY_DAYS,
                                    help="Features use a label only once its transaction is this many days old, "
                                    "as fraud is confirmed with a delay in real life.")
            if st.form_submit_button("Compute features", type="primary"):
                act(lambda c: actions.compute_features(c, dataset, int(delay)),
                    lambda fs: f"Computed {len(fs.computed)} features in {fs.seconds:.1f} s.",
                    status=f"Computing features for {dataset.name}")

# ---------------------------------------------------------------------------------------------
with importer:
    limit_mb = st.get_option("server.maxUploadSize")
    source = st.radio("Source", ["Upload a file", "A path on this server"], horizontal=True,
                      help="Large files are faster from the server's import folder: nothing is copied.")
    encoding = st.selectbox("Text encoding (CSV)", ENCODINGS, help="Windows exports are often latin-1. UTF-16 is detected by itself.")
    path: Path | None = None
    picked: str | None = None  # a file of the server's import folder
    display_name = None
    if source == "Upload a file":
        uploaded = st.file_uploader(f"CSV, Parquet or Excel file (up to {limit_mb:,} MB)", key="upload")
        if uploaded is not None:
            path, display_name = stage_upload(uploaded), uploaded.name
        else:
            discard_upload()
    else:
        folder = import_dir()
        files = list_server_files(folder)
        st.caption(f"Files in the import folder `{folder}` (set `CENTINELA_IMPORT_DIR` to use another); copy a file "
                   "there to import it from the server. Nothing outside it is read.")
        picked = st.selectbox("File in the import folder", [f.name for f in files], index=None, key="import-server-file",
                              placeholder="choose a file" if files else "the folder holds no CSV, Parquet or Excel file",
                              format_func=lambda n: next(f"{n} ({fmt_bytes(f.size_bytes)}, {fmt_ts(f.modified)})"
                                                         for f in files if f.name == n))
        if picked:
            try:
                path, display_name = resolve_server_file(picked, folder), Path(picked).name
            except UserError as exc:
                st.error(str(exc))

    if path is not None:
        try:
            sheet_key = f"import-sheet-{path}"  # per file: another workbook has other sheets
            info = inspect_file(conn, path, display_name, encoding, st.session_state.get(sheet_key))
        except UserError as exc:
            st.error(str(exc))
            info = None
        if info is not None and info.format == "xlsx":
            st.selectbox("Sheet", info.sheets, index=info.sheets.index(info.sheet), key=sheet_key,
                         help="The workbook sheet that holds the transactions, a header in its first row.")
        if info is not None:
            st.caption(f"**{info.display_name}** · {info.format.upper()} · {fmt_bytes(info.size_bytes)} · "
                       f"{len(info.columns)} columns" + (f" · delimiter {info.delimiter!r}" if info.delimiter else "")
                       + (f" · sheet {info.sheet!r}" if info.sheet else ""))
            st.dataframe(info.preview, hide_index=True, height=240)
            st.markdown("**How to read the values**")
            zones = timezone_names(conn)
            c1, c2, c3, c4 = st.columns(4)
            zone = c1.selectbox("Time zone of the dataset", zones, index=zones.index(DEFAULT_TIMEZONE), key="import-zone",
                                help="Times with a UTC offset, Z or a zone name (and Unix times) are converted to it; "
                                "times without one are taken to be in it.")
            decimal = c2.selectbox("Decimal separator", list(DECIMAL_CHOICES), key="import-decimal")
            order = c3.selectbox("Date order", list(ORDER_CHOICES), key="import-date-order")
            epoch = c4.selectbox("Timestamp values", list(EPOCH_CHOICES), key="import-epoch")
            options = ImportOptions(zone, DECIMAL_CHOICES[decimal], ORDER_CHOICES[order], EPOCH_CHOICES[epoch], info.sheet)
            try:
                plans = detect_conventions(conn, info, info.guessed_mapping(), options)
                st.markdown("\n".join(_column_line(p.column, p.time_column, p.role, p.convention()) for p in plans))
                st.caption("How the columns will be read, from the first rows with the guessed mapping; the import "
                           "checks every row.")
            except UserError as exc:
                st.warning(f"{exc}")
            with st.form("import-form"):
                default_name = Path(info.display_name).stem[:64]
                name = st.text_input("Dataset name", value=default_name, key="import-name")
                st.markdown("**Column mapping** — guessed from the names; \\* marks required roles.")
                # Keyed by file and sheet: another file's choices must not carry over to these columns.
                mapping = mapping_editor(info, f"import-{zlib.crc32(repr((str(info.path), info.sheet, info.column_names)).encode())}")
                skip_bad = st.checkbox("Skip rows whose timestamp or amount does not parse (they are counted and listed)")
                if st.form_submit_button("Import", type="primary"):
                    # A server file is resolved again inside the action: refused if it now leads out of the folder.
                    act(lambda c: (actions.import_server_file(c, picked, name, mapping, display_name=info.display_name,
                                                              encoding=info.encoding, options=options,
                                                              skip_bad_rows=skip_bad) if source != "Upload a file" else
                                   actions.import_dataset(c, info.path, name, mapping, display_name=info.display_name,
                                                          encoding=info.encoding, options=options, skip_bad_rows=skip_bad)),
                        lambda done: f"Imported {done.report.rows_stored:,} of {done.report.rows_read:,} rows as "
                                     f"'{done.dataset.name}' in {done.report.seconds:.1f} s.",
                        status=f"Importing {info.display_name}", then=_imported)

# ---------------------------------------------------------------------------------------------
with generator:
    st.write("Synthetic card and wallet transactions at Peruvian merchants, with labelled fraud from six "
             "scenarios (card testing, account takeover, impossible travel, compromised terminal, amount "
             "spike, off-hours). The same seed always gives the same data.")
    with st.form("generate-form"):
        a, b, c = st.columns(3)
        name = a.text_input("Dataset name", value=f"synthetic-{len(list_datasets(conn)) + 1}", key="generate-name")
        rows = b.number_input("Transactions", 1_000, 5_000_000, 200_000, step=50_000)
        seed = c.number_input("Seed", 0, 2**31 - 1, 42)
        fraud_pct = a.number_input("Fraud rate (%)", 0.0, 20.0, 0.5, step=0.1)
        days = b.number_input("Days", 1, 730, 90)
        start = c.date_input("First day", date(2026, 8, 1))
        if st.form_submit_button("Generate", type="primary"):
            cfg = SyntheticConfig(rows=int(rows), seed=int(seed), fraud_rate=fraud_pct / 100, days=int(days), start=start)
            act(lambda c: actions.generate(c, name, cfg),
                lambda done: f"Generated '{done.dataset.name}': {done.dataset.row_count:,} transactions.",
                status=f"Generating {rows:,} transactions", then=lambda done: set_active_dataset(done.dataset.name))

# ---------------------------------------------------------------------------------------------
with manager:
    datasets = list_datasets(conn)
    if datasets:
        st.dataframe(
            [{"name": d.name, "rows": d.row_count, "from": d.min_ts, "to": d.max_ts, "source": d.source,
              "label column": "yes" if d.has_role("label") else "no", "created": d.created_at} for d in datasets],
            hide_index=True,
        )
        with st.form("delete-form"):
            target = st.selectbox("Dataset to delete", [d.name for d in datasets])
            confirm = st.text_input("Type its name to confirm")
            if st.form_submit_button("Move to trash"):
                if confirm.strip() != target:
                    st.error("The name typed does not match; nothing was deleted.")
                else:
                    act(lambda c: actions.delete(c, target), lambda deleted: f"Moved '{deleted.name}' to the trash.",
                        then=lambda deleted: st.session_state.update(undo_delete=deleted.id))
    else:
        st.info("No datasets. Import or generate one.")

    undo_id = st.session_state.get("undo_delete")
    if undo_id is not None and st.button("Undo the last delete", type="primary"):
        st.session_state.pop("undo_delete")
        act(lambda c: actions.restore(c, undo_id), lambda restored: f"Restored '{restored.name}'.",
            then=lambda restored: set_active_dataset(restored.name))

    spark_target = active_dataset(conn)
    if spark_target is not None:
        st.subheader("Alerts scored on Spark")
        outputs = list_spark_outputs()
        st.caption(f"Bring the alerts of a `centinela spark score` output into **{spark_target.name}**: its queue, "
                   "cases and retraining then treat them as any other row. Only alerts come in, with the features "
                   "and scores Spark computed; transactions the dataset holds already are left as they are, so "
                   f"importing the same output again adds nothing. Outputs are read from the import folder "
                   f"`{import_dir()}`.")
        if outputs:
            chosen = st.selectbox("Spark output", outputs, index=None, key="spark-output",
                                  placeholder="Choose a folder with an alerts/ folder")
            if st.button("Import the alerts", disabled=chosen is None, key="spark-import"):
                act(lambda c: scaleout_actions.import_spark_alerts_from_server(c, spark_target, chosen),
                    lambda done: f"Imported {done.imported:,} alerts into '{spark_target.name}' "
                                 f"({done.already_stored:,} of {done.alerts:,} were already there).",
                    status="Importing the alerts")
        else:
            st.info("No Spark output in the import folder yet: write `centinela spark score --output` there.")

    st.subheader("Database sources")
    db_sources = source_actions.list_sources(ctx)
    if db_sources:
        dataset_rows = {d.id: d.row_count for d in list_datasets(conn)}
        st.caption("PostgreSQL tables or queries that fill a dataset: each sync reads the rows at or past the last "
                   "watermark minus the overlap window, checks them as an import, and appends new transaction ids, "
                   "updates changed ones and skips the rest (`centinela source add`, `centinela sync`).")
        st.dataframe([{
            "source": s.name, "dataset": s.dataset, "reads": s.relation or "(query)", "watermark": s.watermark,
            "last sync": fmt_ts(s.last_sync_at) if s.last_sync_at else "never",
            "last watermark": s.last_watermark or "—", "syncs": s.syncs, "rows new": s.rows_new,
            "rows updated": s.rows_updated,
            "last sync: read / new / updated / unchanged": "—" if not s.last_sync else
            f"{s.last_sync['rows_read']:,} / {s.last_sync['new']:,} / {s.last_sync['updated']:,} / "
            f"{s.last_sync['skipped']:,}",
            "dataset rows": dataset_rows.get(s.dataset_id),
            "last sync: values set to empty": sum(p["count"] for p in (s.last_sync or {}).get("problems", [])),
            "url": redact(s.url)} for s in db_sources], hide_index=True, key="database-sources")
        for s in db_sources:
            for p in (s.last_sync or {}).get("problems", []):
                st.warning(f"Last sync of '{s.name}': {describe_problem(p, s.id_column)}")
        chosen_source = st.selectbox("Source", [s.name for s in db_sources], key="sync-source")
        if st.button("Sync now", key="sync-now", help="Admins only: loads the source's new and changed rows."):
            act(lambda c: source_actions.sync(c, chosen_source),
                lambda r: f"Synced '{r.source}': {r.rows_read:,} rows read, {r.new:,} new, {r.updated:,} updated, "
                          f"{r.skipped:,} unchanged; watermark {r.watermark_after}.", status="Syncing",
                then=lambda r: [flash("info", f"Note: {n}") for n in r.notes])
    else:
        st.caption("No database sources. An admin adds one with `centinela source add NAME --url postgresql://... "
                   "--table T --watermark COLUMN` (see the README's Integrations), then runs `centinela sync NAME`.")

    trash = list_datasets(conn, deleted=True)
    if trash:
        st.subheader("Trash")
        for d in trash:
            col_name, col_button = st.columns([4, 1])
            col_name.write(f"**{d.name}** · {d.row_count:,} rows · {d.source}")
            if col_button.button("Restore", key=f"restore-{d.id}"):
                act(lambda c, d=d: actions.restore(c, d.id), lambda restored: f"Restored '{restored.name}'.",
                    then=lambda restored: set_active_dataset(restored.name))
        if st.button("Empty trash", help="Deletes the datasets in the trash for good, with their features and labels."):
            st.session_state.pop("undo_delete", None)
            act(actions.empty_trash, lambda count: f"Deleted {count} dataset(s) for good.")
