"""Users & audit (admins): who may sign in with which role, and the audit trail."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.auth import current_user
from dashboard.connection import get_cursor
from dashboard.shell import page_setup
from dashboard.state import flash, show_flashes
from data.audit import ACTIONS, audit_log
from data.errors import DataError
from data.export import safe_csv
from data.users import ROLE_TITLES, ROLES, add_user, change_user, list_users

page_setup()
conn = get_cursor()
admin = current_user()
st.title("Users & audit")
show_flashes()
tab_users, tab_audit = st.tabs(["Users", "Audit trail"])

with tab_users:
    users = list_users(conn)
    st.dataframe(users, hide_index=True, column_config={"role": st.column_config.TextColumn("role")})
    left, right = st.columns(2)
    with left, st.form("user-add", clear_on_submit=True, enter_to_submit=False):
        st.markdown("**Add a user**")
        name = st.text_input("User name", max_chars=64, key="add-name")
        role = st.selectbox("Role", ROLES, format_func=ROLE_TITLES.get, key="add-role")
        password = st.text_input("Password (at least 10 characters)", type="password", key="add-password")
        again = st.text_input("Password again", type="password", key="add-again")
        if st.form_submit_button("Add user", type="primary"):
            try:
                if password != again:
                    raise DataError("the two passwords differ.")
                created = add_user(conn, name, password, role, admin.username)
            except DataError as exc:
                st.error(str(exc))
            else:
                flash("success", f"Added {created.username} as {ROLE_TITLES[created.role]}.")
                st.rerun()
    with right, st.form("user-change", enter_to_submit=False):
        st.markdown("**Change a user**")
        names = list(users["username"])
        who = st.selectbox("User", names, index=None, key="change-name", placeholder="choose a user")
        current = users.set_index("username").loc[who] if who else None
        new_role = st.selectbox("Role", ROLES, format_func=ROLE_TITLES.get, key="change-role",
                                index=ROLES.index(current["role"]) if current is not None else 0)
        new_password = st.text_input("New password (leave empty to keep)", type="password", key="change-password")
        disabled = st.checkbox("Disabled (cannot sign in)", key="change-disabled",
                               value=bool(current is not None and pd.notna(current["disabled_at"])))
        if st.form_submit_button("Save changes"):
            try:
                if not who:
                    raise DataError("choose a user first.")
                change_user(conn, who, admin.username, role=new_role, password=new_password or None, disabled=disabled)
            except DataError as exc:
                st.error(str(exc))
            else:
                flash("success", f"Saved the changes to {who}.")
                st.rerun()

with tab_audit:
    a, b, c = st.columns([1, 2, 1])
    actor = a.text_input("Who (exact name)", max_chars=128, key="audit-actor") or None
    actions = b.multiselect("What", ACTIONS, key="audit-actions")
    text = c.text_input("Containing", max_chars=200, key="audit-text", help="Searched in the target and the values, literally.")
    period = st.date_input("When", value=(), key="audit-period", help="Leave empty for all time; both days included.")
    start, end = (period[0], period[-1]) if period else (None, None)
    log = audit_log(conn, actor=actor, actions=tuple(actions), start=start, end=end, text=text, limit=5_000)
    st.caption(f"{len(log):,} entr{'y' if len(log) == 1 else 'ies'}, newest first" +
               (" (the newest 5,000)" if len(log) == 5_000 else "") + ". The trail is append-only.")
    st.dataframe(log, hide_index=True)
    st.download_button("Download the audit trail (CSV)", safe_csv(log), file_name="centinela-audit.csv",
                       icon=":material/download:")
