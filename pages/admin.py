"""Users & audit (admins): who may sign in with which role, API keys for other systems, the audit
trail, browser sessions (end one, set how long they last), backups, Kafka consumers and webhooks."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from application import backups as backup_actions
from application import keys as key_actions
from application import sessions as session_actions
from application import streams as stream_actions
from application import users as user_actions
from application import webhooks as webhook_actions
from dashboard.actions import act, page_context
from dashboard.shell import page_setup
from dashboard.state import show_flashes
from data.audit import ACTIONS, audit_log
from data.datasets import list_datasets
from data.export import safe_csv
from data.keys import SCOPES
from data.users import ROLE_TITLES, ROLES, list_users
from data.webhooks import EVENT_HELP, EVENTS
from integrations import kafka

page_setup()
conn = page_context().conn
st.title("Users & audit")
show_flashes()
tab_users, tab_keys, tab_audit, tab_sessions, tab_backups, tab_kafka, tab_webhooks = st.tabs(
    ["Users", "API keys", "Audit trail", "Sessions", "Backups", "Kafka", "Webhooks"])

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

with tab_keys:
    st.caption("Keys let other systems score transactions (`POST /api/v1/datasets/NAME/transactions`), send labels "
               "and read decisions; the API's documentation is at [/api/docs](/api/docs). Only a hash of each key is "
               "kept: a key is shown once, when it is created.")
    ctx = page_context()
    found = key_actions.list_keys(ctx)
    now = ctx.clock()
    names = {d.id: d.name for d in list_datasets(conn)}
    if found:
        st.dataframe(pd.DataFrame([{"name": k.name, "key starts": k.prefix + "…", "scopes": ", ".join(k.scopes),
                                    "dataset": names.get(k.dataset_id, "all") if k.dataset_id else "all",
                                    "state": k.state(now), "created": k.created_at, "by": k.created_by,
                                    "expires": k.expires_at} for k in found]), hide_index=True)
    else:
        st.info("No API keys yet.")
    new_left, new_right = st.columns(2)
    with new_left, st.form("key-create", clear_on_submit=True, enter_to_submit=False):
        st.markdown("**Create a key**")
        key_name = st.text_input("Name (the system that uses it)", max_chars=64, key="key-name")
        scopes = st.multiselect("Scopes", SCOPES, default=["score"], key="key-scopes")
        only = st.selectbox("Dataset", ["all datasets", *names.values()], key="key-dataset")
        days = st.number_input("Expires after (days, 0 = never)", min_value=0, max_value=3650, value=0, key="key-days")
        if st.form_submit_button("Create key", type="primary"):
            created = act(lambda c: key_actions.create(c, key_name, scopes, None if only == "all datasets" else only,
                                                       days or None), rerun=False)
            if created is not None:
                st.success(f"Created key {created.key.name!r}. Copy it now: it is not shown again.")
                st.code(created.secret, language=None)
    with new_right, st.form("key-revoke", enter_to_submit=False):
        st.markdown("**Revoke a key**")
        active_names = [k.name for k in found if k.state(now) == "active"]
        which = st.selectbox("Key", active_names, index=None, key="key-revoke-name", placeholder="choose a key")
        if st.form_submit_button("Revoke"):
            if not which:
                st.error("Choose a key first.")
            else:
                act(lambda c: key_actions.revoke(c, which), f"Revoked key {which}: requests with it now get 401.")

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

with tab_sessions:
    ctx = page_context()
    rules = session_actions.expiry(ctx)
    st.caption(f"A signed-in browser keeps its session across reloads and tabs until it signs out, is unused for "
               f"{rules.idle_minutes} minutes, or {rules.absolute_hours} hours after signing in. Changing a user's "
               "password or role, or disabling it, ends its sessions.")
    open_now = [(row, expired) for row, _, expired in session_actions.open_sessions(ctx) if not expired]
    if open_now:
        st.dataframe(pd.DataFrame([{"session": row.id, "user": row.username, "signed in": row.created_at,
                                    "last used": row.last_seen_at,
                                    "ends at the latest": min(rules.idle_deadline(row), rules.absolute_deadline(row)),
                                    "browser": row.client, "address": row.address} for row, _ in open_now]),
                     hide_index=True)
    else:
        st.info("No browser is signed in.")
    end_left, end_right = st.columns(2)
    with end_left, st.form("session-end", enter_to_submit=False):
        st.markdown("**End a session**")
        labels = {row.id: f"#{row.id} {row.username} (signed in {row.created_at:%Y-%m-%d %H:%M})" for row, _ in open_now}
        which_session = st.selectbox("Session", list(labels), index=None, format_func=labels.get, key="session-end-id",
                                     placeholder="choose a session")
        if st.form_submit_button("End session"):
            if which_session is None:
                st.error("Choose a session first.")
            else:
                act(lambda c: session_actions.end(c, which_session),
                    lambda ended: f"Ended session #{ended.id} of {ended.username}: that browser is asked to sign in again.")
    with end_right, st.form("session-expiry", enter_to_submit=False):
        st.markdown("**How long sessions last**")
        idle = st.number_input("Idle expiry (minutes unused)", 1, 24 * 60, rules.idle_minutes, key="session-idle")
        absolute = st.number_input("Absolute expiry (hours after signing in)", 1, 24 * 30, rules.absolute_hours,
                                   key="session-absolute")
        if st.form_submit_button("Save expiry"):
            act(lambda c: session_actions.set_expiry(c, int(idle), int(absolute)),
                lambda saved: f"Sessions now end after {saved.idle_minutes} minutes unused or {saved.absolute_hours} hours.")

with tab_backups:
    ctx = page_context()
    folder = backup_actions.default_folder(ctx).parent
    st.caption(f"A backup is a consistent copy of the database and the model files, taken while the app runs (by the "
               f"server, which holds the file), then reopened and checked. It goes into a new folder under `{folder}` "
               "(set `CENTINELA_BACKUP_DIR` to change it); `centinela restore FOLDER` puts one back with the app stopped.")
    if st.button("Back up now", type="primary", icon=":material/backup:"):
        act(lambda c: backup_actions.backup(c, backup_actions.default_folder(c)),
            lambda done: f"Backed up {done.rows:,} rows and {len(done.manifest.models)} model files to {done.folder} "
                         f"in {done.seconds:.1f} s; the copy was reopened and its row counts match.",
            status="Backing up the database and the model files")
    found = backup_actions.list_backups(folder)
    if found:
        st.dataframe(pd.DataFrame([{"folder": str(path), "taken": manifest.created_at,
                                    "rows": sum(manifest.tables.values()), "model files": len(manifest.models)}
                                   for path, manifest in found]), hide_index=True)
    else:
        st.info("No backup in that folder yet.")

with tab_kafka:
    st.caption("A consumer reads a dataset's transactions from a Kafka topic (JSON, one per message, with the API's "
               "fields), scores them exactly as the API does, publishes each decision to the decisions topic and "
               "refused messages, with the reason, to the dead-letter topic. It runs in this server; offsets are "
               "committed only once the decisions are stored.")
    consumers = stream_actions.list_consumers(page_context())
    running = {status.dataset: status for status in kafka.statuses()}
    if consumers:
        # What a consumer is doing first (this server's figures since it started), then its settings.
        st.dataframe(pd.DataFrame([{
            "dataset": c.dataset, "state": running[c.dataset].state if c.dataset in running else
            ("waiting for the server" if c.enabled else "stopped"),
            "consumed": running[c.dataset].consumed if c.dataset in running else None,
            "dead-lettered": running[c.dataset].dead_lettered if c.dataset in running else None,
            "lag": running[c.dataset].lag if c.dataset in running else None,
            "last error": running[c.dataset].last_error if c.dataset in running else None,
            **{k: v for k, v in c.as_dict().items() if k != "dataset"}} for c in consumers]),
            hide_index=True)
    else:
        st.info("No Kafka consumer yet. Set one below, or: centinela consume DATASET --bootstrap HOST:PORT --topic T")
    set_left, stop_right = st.columns(2)
    with set_left, st.form("kafka-set", enter_to_submit=False):
        st.markdown("**Set a consumer**")
        names = [d.name for d in list_datasets(conn)]
        kafka_dataset = st.selectbox("Dataset", names, index=None, key="kafka-dataset", placeholder="choose a dataset")
        bootstrap = st.text_input("Brokers (HOST:PORT, comma-separated)", key="kafka-bootstrap")
        topic = st.text_input("Topic of transactions", key="kafka-topic")
        group = st.text_input("Consumer group (default centinela-DATASET)", key="kafka-group")
        decisions_topic = st.text_input("Decisions topic (optional)", key="kafka-decisions")
        dead_topic = st.text_input("Dead-letter topic (default TOPIC.dead-letter)", key="kafka-dead")
        if st.form_submit_button("Save and start", type="primary"):
            if not kafka_dataset:
                st.error("Choose a dataset first.")
            else:
                act(lambda c: stream_actions.configure_consumer(c, kafka_dataset, bootstrap, topic, group or None,
                                                                decisions_topic or None, dead_topic or None),
                    lambda saved: f"Dataset {saved.dataset} now reads {saved.topic}; the consumer starts within seconds.")
    with stop_right, st.form("kafka-stop", enter_to_submit=False):
        st.markdown("**Stop a consumer**")
        enabled = [c.dataset for c in consumers if c.enabled]
        which = st.selectbox("Dataset", enabled, index=None, key="kafka-stop-dataset", placeholder="choose a dataset")
        if st.form_submit_button("Stop"):
            if not which:
                st.error("Choose a dataset first.")
            else:
                act(lambda c: stream_actions.stop_consumer(c, which),
                    lambda stopped: f"Stopped the consumer of {stopped.dataset}; its settings are kept.")

with tab_webhooks:
    st.caption("A webhook is told of events as they happen: each is POSTed as JSON to its URL, signed with its secret "
               "(header `Centinela-Signature: t=UNIX,v1=HMAC-SHA256(secret, \"t.\" + body)`), and tried again with "
               "growing pauses until the receiver answers 2xx. Events are written with the change they report, so "
               "none is lost while the receiver (or this server) is down. "
               + " · ".join(f"`{e}`: {EVENT_HELP[e]}" for e in EVENTS))
    hook_ctx = page_context()
    hooks = webhook_actions.list_webhooks(hook_ctx)
    by_state = webhook_actions.counts(hook_ctx)
    if hooks:
        st.dataframe(pd.DataFrame([{
            "name": w.name, "state": "enabled" if w.enabled else "paused", "url": w.url, "events": ", ".join(w.events),
            "dataset": w.dataset or "all", **{s: by_state.get(w.name, {}).get(s, 0) for s in webhook_actions.STATES},
            "created": w.created_at, "by": w.created_by} for w in hooks]), hide_index=True)
    else:
        st.info("No webhooks yet. Add one below, or: centinela webhooks add NAME --url URL --events alert.raised")
    add_left, change_right = st.columns(2)
    with add_left, st.form("webhook-add", enter_to_submit=False):
        st.markdown("**Add a webhook**")
        hook_name = st.text_input("Name", max_chars=64, key="webhook-name")
        hook_url = st.text_input("URL (http or https)", max_chars=2000, key="webhook-url")
        hook_events = st.multiselect("Events", EVENTS, default=["alert.raised"], key="webhook-events")
        hook_names = {d.name for d in list_datasets(conn)}
        hook_dataset = st.selectbox("Dataset", ["all datasets", *sorted(hook_names)], key="webhook-dataset")
        if st.form_submit_button("Add webhook", type="primary"):
            added = act(lambda c: webhook_actions.add_webhook(
                c, hook_name, hook_url, hook_events, None if hook_dataset == "all datasets" else hook_dataset), rerun=False)
            if added is not None:
                st.success(f"Added webhook {added.webhook.name!r}. Give the receiver this signing secret now: it is "
                           "not shown again.")
                st.code(added.secret, language=None)
    with change_right, st.form("webhook-change", enter_to_submit=False):
        st.markdown("**Change a webhook**")
        chosen = st.selectbox("Webhook", [w.name for w in hooks], index=None, key="webhook-change-name",
                              placeholder="choose a webhook")
        pause, resume, rotate, remove = st.columns(4)
        pressed = {"pause": pause.form_submit_button("Pause"), "resume": resume.form_submit_button("Resume"),
                   "rotate": rotate.form_submit_button("New secret"), "remove": remove.form_submit_button("Remove")}
        what = next((k for k, v in pressed.items() if v), None)
        if what and not chosen:
            st.error("Choose a webhook first.")
        elif what in ("pause", "resume"):
            act(lambda c: webhook_actions.set_enabled(c, chosen, what == "resume"),
                lambda hook: f"Webhook {hook.name} {'resumed' if hook.enabled else 'paused: its events wait'}.")
        elif what == "remove":
            act(lambda c: webhook_actions.remove_webhook(c, chosen),
                lambda dropped: f"Removed webhook {chosen}" + (f"; {dropped:,} undelivered events given up." if dropped
                                                               else "."))
        elif what == "rotate":
            rotated = act(lambda c: webhook_actions.rotate_secret(c, chosen), rerun=False)
            if rotated is not None:
                st.success(f"Webhook {chosen} signs with this new secret from now on; it is not shown again.")
                st.code(rotated.secret, language=None)
    st.markdown("**Delivery log**")
    log_left, log_right = st.columns(2)
    log_hook = log_left.selectbox("Webhook", ["all", *[w.name for w in hooks]], key="webhook-log-name")
    log_state = log_right.selectbox("State", ["all", *webhook_actions.STATES], key="webhook-log-state")
    deliveries = webhook_actions.delivery_log(hook_ctx, None if log_hook == "all" else log_hook,
                                              None if log_state == "all" else log_state, limit=1_000)
    if deliveries.empty:
        st.info("Nothing delivered or waiting yet.")
    else:
        st.caption(f"The newest {len(deliveries):,} deliveries, newest first.")
        st.dataframe(deliveries, hide_index=True)
        st.download_button("Download the log (CSV)", safe_csv(deliveries), "webhook-deliveries.csv", "text/csv",
                           key="webhook-log-download")
        with st.form("webhook-redeliver", enter_to_submit=False):
            again = st.number_input("Delivery number", min_value=1, step=1, value=int(deliveries["delivery"].iloc[0]),
                                    key="webhook-redeliver-id")
            if st.form_submit_button("Send again"):
                act(lambda c: webhook_actions.redeliver(c, int(again)),
                    lambda found: f"Delivery #{int(again)} will be sent again within seconds, as delivery "
                                  f"#{found['id']}.")
