"""Users & audit (admins): who may sign in with which role, and the audit trail."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from application import users as user_actions
from dashboard.actions import act, page_context
from dashboard.shell import page_setup
from dashboard.state import show_flashes
from data.audit import ACTIONS, audit_log
from data.export import safe_csv
from data.users import ROLE_TITLES, ROLES, list_users

page_setup()
conn = page_context().conn
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
            if password != again:
                st.error("The two passwords differ; nothing was changed.")
            else:
                act(lambda c: user_actions.add(c, name, password, role),
                    lambda created: f"Added {created.username} as {ROLE_TITLES[created.role]}.")
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
            if not who:
                st.error("Choose a user first.")
            else:
                act(lambda c: user_actions.change(c, who, role=new_role, password=new_password or None, disabled=disabled),
                    f"Saved the changes to {who}.")

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
