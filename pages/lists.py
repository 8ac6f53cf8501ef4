"""Lists: named block and allow lists over a column; add, import and remove entries, and see each
entry's history."""

from __future__ import annotations

from datetime import datetime, time

import streamlit as st

from application import lists
from dashboard.actions import act
from dashboard.shell import dataset_page
from dashboard.uploads import saved_upload
from data.lists import KINDS, NOT_KEYS

ctx, dataset = dataset_page("Lists")
found = lists.lists(ctx, dataset)
st.caption("A block list raises an alert on every transaction whose column holds a listed value; an allow list "
           "suppresses alerts on them. Rules name lists too: `customer_id IN LIST vip_customers`. Expired entries "
           "stop counting.")

if found:
    st.dataframe([{"list": rl.name, "kind": rl.kind, "column": rl.key_column, "entries in effect": rl.entries,
                   "description": rl.description, "created by": rl.created_by} for rl in found], hide_index=True,
                 key="lists-table")
else:
    st.info("No lists yet. Create one below, or block a customer from a case.")

with st.expander("Create a list", expanded=not found, icon=":material/playlist_add:"), st.form("list-create"):
    c1, c2, c3 = st.columns(3)
    name = c1.text_input("Name", max_chars=63, placeholder="vip_customers")
    kind = c2.radio("Kind", KINDS, horizontal=True)
    keys = [c.name for c in dataset.columns if c.name not in NOT_KEYS and not c.name.startswith("_")]
    key = c3.selectbox("Column", keys, index=keys.index("customer_id") if "customer_id" in keys else 0)
    description = st.text_input("Description (optional)", max_chars=500)
    if st.form_submit_button("Create list", type="primary"):
        act(lambda c: lists.create(c, dataset, name, kind, key, description),
            lambda rl: f"Created {rl.kind} list {rl.name!r} over {rl.key_column}.")

if found:
    chosen = st.selectbox("List", [rl.name for rl in found], key="list-pick")
    view = lists.show(ctx, dataset, chosen)
    rl = view.rule_list
    st.markdown(f"**{rl.name}**: {rl.kind} list of `{rl.key_column}`, {rl.entries:,} entries in effect")
    st.dataframe(view.entries, hide_index=True, key="list-entries")
    add_col, import_col = st.columns(2, gap="large")
    with add_col, st.form("list-add"):
        st.markdown("**Add an entry**")
        value = st.text_input(f"Value of {rl.key_column}", max_chars=256)
        reason = st.text_input("Reason", max_chars=500)
        expires = st.date_input("Expires (optional)", value=None)
        if st.form_submit_button("Add"):
            until = datetime.combine(expires, time.min) if expires else None
            act(lambda c: lists.add_entry(c, dataset, rl.name, value, reason, until), f"Added {value!r} to {rl.name}.")
    with import_col:
        st.markdown("**Import a CSV file**")
        st.caption("Columns value, reason and optionally expires_at (YYYY-MM-DD). One bad row rejects the file.")
        upload = st.file_uploader("Entries (CSV)", type=["csv"], key="list-upload")
        if upload is not None and st.button("Import entries", key="list-import"):
            with saved_upload(upload) as path:
                act(lambda c: lists.import_entries(c, dataset, rl.name, str(path)),
                    lambda n: f"Imported {n:,} entries into {rl.name}.")
    if not view.entries.empty:
        r1, r2, r3 = st.columns([2, 2, 1], vertical_alignment="bottom")
        gone = r1.selectbox("Remove an entry", list(view.entries["value"]), key="list-remove-value")
        why = r2.text_input("Why (optional)", max_chars=500, key="list-remove-reason")
        if r3.button("Remove", key="list-remove"):
            act(lambda c: lists.remove_entry(c, dataset, rl.name, gone, why), f"Removed {gone!r} from {rl.name}.")
    st.markdown("**History**")
    st.dataframe(view.history, hide_index=True, key="list-history")
