"""Rules: write a condition (checked as you go), backtest it, save it as a draft, deploy it
(shadow, active, retired), edit it into new versions and restore old ones."""

from __future__ import annotations

from datetime import date, timedelta

import streamlit as st

from application import rules
from application.rules import may_deploy
from application.runs import active as active_run
from dashboard import charts
from dashboard.actions import act
from dashboard.cached import rule_suggestions
from dashboard.formatting import fmt_int, fmt_pct
from dashboard.navigation import page_link
from dashboard.shell import dataset_page
from data.errors import UserError
from data.rule_grammar import FUNCTION_NAMES
from data.rules import ACTIONS, DEFAULT_SEVERITY

BACKTEST_KEY = "rules-backtest"  # the backtest the analyst asked for: what, and over which days

ctx, dataset = dataset_page("Rules")
deployer = may_deploy(ctx)
first, last = dataset.min_ts.date(), dataset.max_ts.date()


def show_problems(condition: str, problems) -> None:
    """Each problem with the part of the condition it is about."""
    for p in problems:
        st.error(p.describe(condition), icon=":material/error:")
        line_start = condition.rfind("\n", 0, p.start) + 1
        line_end = condition.find("\n", p.start)
        line = condition[line_start:line_end if line_end >= 0 else None]
        marker = " " * (p.start - line_start) + "^" * max(1, min(p.end, line_start + len(line)) - p.start)
        st.code(f"{line}\n{marker}", language=None)


def show_backtest(result: rules.Backtest, key: str) -> None:
    s = result.summary
    m = st.columns(5)
    m[0].metric("Hits", fmt_int(s["hits"]), help=f"{s['days']} days, {s['from']} to {s['until']}")
    m[1].metric("Precision", fmt_pct(s["precision"], 1), help="Hits that the dataset's label column marks as fraud.")
    m[2].metric("Recall", fmt_pct(s["recall"], 1), help="Frauds in the period (label column) that the rule hits.")
    m[3].metric("Already alerted", fmt_int(s["already_alerted"]),
                help=f"Hits the active model (run #{result.run_id}) alerts on anyway." if result.run_id else "No model.")
    m[4].metric("Added per day", "—" if s["added_per_day"] is None else f"{s['added_per_day']:,.1f}",
                help=f"{fmt_int(s['added'])} alerts the model does not raise: the analysts' extra workload.")
    st.caption(f"Analysts' labels: precision {fmt_pct(s['analyst_precision'], 1)} ({fmt_int(s['hit_confirmed'])} "
               f"confirmed fraud of {fmt_int(s['hit_reviewed'])} reviewed hits), recall {fmt_pct(s['analyst_recall'], 1)}. "
               f"Computed in {result.seconds:.2f} s.")
    st.plotly_chart(charts.rule_backtest(result.days), key=f"backtest-chart-{key}")


def period(key: str) -> tuple[date, date]:
    picked = st.date_input("Backtest period", (first, last), min_value=first, max_value=last, key=key,
                           help="Both days included.")
    return (picked[0], picked[-1]) if picked else (first, last)


def run_backtest(what: dict) -> None:
    try:
        result = rules.backtest(ctx, dataset, name=what.get("name"), condition=what.get("condition"),
                                start=what["start"], end=what["end"], action=what.get("action", "alert"))
    except UserError as exc:
        st.error(str(exc))
        return
    show_backtest(result, what.get("name") or "draft")


# --- the rules ----------------------------------------------------------------------------------
found = rules.list_rules(ctx, dataset)
if found:
    st.dataframe([{"rule": r.name, "status": r.status, "version": r.version, "action": r.action,
                   "severity": r.severity, "condition": r.condition, "changed by": r.changed_by,
                   "changed": r.changed_at} for r in found], hide_index=True, key="rules-table",
                 column_config={"changed": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})
else:
    st.info("No rules yet: write the first one below.")
st.caption("Active alert rules add their hits to the alert queue; active allow rules take theirs out; shadow rules "
           "are evaluated and recorded but raise nothing. Lists live on the Lists page.")
page_link("lists", label="Block and allow lists")

# --- write a rule -------------------------------------------------------------------------------
with st.expander("Write a rule", expanded=not found, icon=":material/edit_note:"):
    st.markdown(
        "A condition over the transaction's columns and features: comparisons (`= <> < <= > >=`), `AND`, `OR`, `NOT`, "
        "`+ - * /`, `IN ('a', 'b')`, `BETWEEN`, `IS NULL`, `customer_id IN LIST vip_customers`, and the functions "
        f"{', '.join(f'`{f}()`' for f in FUNCTION_NAMES)}. For example "
        "`amount > 3 * cust_mean_amount_7d AND is_new_device = 1 AND hour < 6`.")
    c1, c2, c3 = st.columns([2, 1, 1])
    name = c1.text_input("Rule name", max_chars=63, key="rule-name", placeholder="night_new_device")
    action = c2.radio("Action", ACTIONS, horizontal=True, key="rule-action",
                      format_func={"alert": "raise an alert", "allow": "allow (suppress)"}.get)
    severity = c3.slider("Severity", 1, 10, DEFAULT_SEVERITY, key="rule-severity")
    condition = st.text_area("Condition", max_chars=10_000, key="rule-condition", height=90)
    description = st.text_input("Description (optional)", max_chars=1_000, key="rule-description")
    if condition.strip():
        problems = rules.check_condition(ctx, dataset, condition)
        if problems:
            show_problems(condition, problems)
        else:
            st.success("The condition is accepted.", icon=":material/check:")
    draft_period = period("rule-draft-period")
    b1, b2 = st.columns([1, 4])
    if b1.button("Backtest", key="rule-draft-backtest", disabled=not condition.strip()):
        st.session_state[BACKTEST_KEY] = {"condition": condition, "action": action, "start": draft_period[0],
                                          "end": draft_period[1]}
    if b2.button("Save as draft", type="primary", key="rule-save", disabled=not (condition.strip() and name.strip())):
        act(lambda c: rules.add(c, dataset, name, condition, action=action, severity=severity, description=description),
            lambda r: f"Rule {r.name!r} saved as a draft (version {r.version}).")
    asked = st.session_state.get(BACKTEST_KEY)
    if asked and asked.get("condition") is not None and asked["condition"] == condition:
        run_backtest(asked)

# --- one rule -----------------------------------------------------------------------------------
if found:
    st.subheader("A rule")
    names = [r.name for r in found]
    chosen = st.selectbox("Rule", names, key="rule-pick")
    detail = rules.show(ctx, dataset, chosen)
    rule = detail.rule
    st.markdown(f"**{rule.name}** · {rule.status} · version {rule.version} · {rule.action} · severity {rule.severity}")
    st.code(rule.condition, language="sql")
    if rule.description:
        st.caption(rule.description)
    rule_period = period(f"rule-period-{rule.name}")
    if st.button("Backtest this rule", key="rule-backtest"):
        st.session_state[BACKTEST_KEY] = {"name": rule.name, "start": rule_period[0], "end": rule_period[1]}
    asked = st.session_state.get(BACKTEST_KEY)
    if asked and asked.get("name") == rule.name:
        run_backtest(asked)

    st.markdown("**Lifecycle**" + ("" if deployer else " (data scientists and admins deploy rules)"))
    moves = st.columns(5)
    for column, (status, label) in zip(moves, (("shadow", "Shadow"), ("active", "Activate"), ("retired", "Retire"),
                                               ("draft", "Back to draft")), strict=False):
        if column.button(label, key=f"rule-to-{status}", disabled=not deployer or rule.status == status):
            act(lambda c, s=status: rules.set_status(c, dataset, rule.name, s),
                lambda r: f"Rule {r.name!r} is now {r.status} (version {r.version}).")
    if moves[4].button("Delete", key="rule-delete", disabled=not deployer):
        act(lambda c: rules.delete(c, dataset, rule.name), f"Rule {rule.name!r} deleted.")

    with st.expander("Edit (a new version)", icon=":material/edit:"), st.form(f"rule-edit-{rule.name}-{rule.version}"):
        new_condition = st.text_area("Condition", value=rule.condition, max_chars=10_000, height=90)
        e1, e2 = st.columns(2)
        new_action = e1.radio("Action", ACTIONS, index=ACTIONS.index(rule.action), horizontal=True)
        new_severity = e2.slider("Severity", 1, 10, rule.severity)
        new_description = st.text_input("Description", value=rule.description or "", max_chars=1_000)
        if st.form_submit_button("Save new version"):
            act(lambda c: rules.edit(c, dataset, rule.name, condition=new_condition, action=new_action,
                                     severity=new_severity, description=new_description),
                lambda r: f"Rule {r.name!r} is now version {r.version}.")
    versions, events, hits = st.tabs(["Versions", "Lifecycle history", "Recorded live hits"])
    with versions:
        st.dataframe(detail.versions, hide_index=True, key="rule-versions")
        older = [int(v) for v in detail.versions["version"] if int(v) != rule.version]
        if older:
            r1, r2 = st.columns([1, 3], vertical_alignment="bottom")
            back_to = r1.selectbox("Version", older, key="rule-restore-version")
            if r2.button(f"Restore version {back_to}", key="rule-restore"):
                act(lambda c: rules.restore(c, dataset, rule.name, back_to),
                    lambda r: f"Version {back_to} restored as version {r.version}.")
    with events:
        st.dataframe(detail.events, hide_index=True, key="rule-events")
    with hits:
        if detail.recorded_hits.empty:
            st.caption("No transaction scored live has hit this rule yet.")
        else:
            st.dataframe(detail.recorded_hits, hide_index=True, key="rule-hits")

# --- shadow rules' report -----------------------------------------------------------------------
shadow = [r for r in found if r.status == "shadow"]
if shadow:
    st.subheader("Shadow rules")
    st.caption("Evaluated on every transaction and recorded, raising nothing: what each would have added.")
    for r in shadow:
        with st.container(border=True):
            st.markdown(f"**{r.name}** (version {r.version}): `{r.condition}`")
            result = rules.backtest(ctx, dataset, name=r.name)
            s = result.summary
            st.caption(f"{fmt_int(s['hits'])} hits, {fmt_int(s['added'])} the model misses; precision "
                       f"{fmt_pct(s['precision'], 1)}, recall {fmt_pct(s['recall'], 1)}.")
            recorded = rules.show(ctx, dataset, r.name).recorded_hits
            if not recorded.empty:
                st.caption(f"Live: {fmt_int(int(recorded['hits'].sum()))} hits recorded.")

# --- suggested rules ----------------------------------------------------------------------------
SUGGEST_KEY, DISMISSED_KEY = "rules-suggest", "rules-dismissed"  # the periods asked for; suggestions set aside
st.subheader("Suggested rules")
st.caption("Short conditions drawn from the labelled fraud of a training period (the paths of shallow decision trees "
           "whose leaves are mostly fraud), each backtested on a later period. Adopt one as a draft, edit it first, or "
           "dismiss it.")
split = first + (last - first) * 2 / 3
s1, s2 = st.columns(2)
train = s1.date_input("Training period", (first, split), min_value=first, max_value=last, key="suggest-train")
test = s2.date_input("Backtest period (later)", (split + timedelta(days=1), last), min_value=first, max_value=last,
                     key="suggest-test")
if st.button("Suggest rules", key="suggest-run", icon=":material/lightbulb:"):
    st.session_state[SUGGEST_KEY] = (tuple(train), tuple(test))
asked = st.session_state.get(SUGGEST_KEY)
if asked:
    active = active_run(ctx, dataset)
    try:
        with st.spinner("Growing trees on the training period…"):
            suggestions = rule_suggestions(dataset, (active.run.id, active.threshold) if active else (), asked[0],
                                           asked[1])
    except UserError as exc:
        st.error(str(exc))
        suggestions = []
    dismissed = st.session_state.setdefault(DISMISSED_KEY, set())
    shown = [x for x in suggestions if x.condition not in dismissed]
    if asked and not shown:
        st.info("No suggestion: the training period's fraud has no short pattern at that precision, or all were dismissed.")
    for i, suggestion in enumerate(shown):
        with st.container(border=True):
            st.code(suggestion.condition, language="sql")
            b = suggestion.backtest.summary
            st.caption(f"Training: {fmt_int(suggestion.fraud)} fraud and {fmt_int(suggestion.legitimate)} legitimate "
                       f"(precision {fmt_pct(suggestion.precision, 1)}). Later period: {fmt_int(b['hits'])} hits, "
                       f"precision {fmt_pct(b['precision'], 1)}, recall {fmt_pct(b['recall'], 1)}, "
                       f"{fmt_int(b['added'])} the model misses.")
            a1, a2, a3 = st.columns(3)
            if a1.button("Adopt", key=f"suggest-adopt-{i}", type="primary"):
                act(lambda c, s=suggestion: rules.add(c, dataset, rules.free_name(c, dataset), s.condition,
                                                      description="Suggested from the labelled fraud of "
                                                                  f"{asked[0][0]} to {asked[0][-1]}"),
                    lambda r: f"Adopted as draft {r.name!r}.")
            a2.button("Edit", key=f"suggest-edit-{i}", on_click=lambda s=suggestion: st.session_state.update(
                {"rule-condition": s.condition, "rule-name": ""}), help="Copy it into 'Write a rule' above")
            if a3.button("Dismiss", key=f"suggest-dismiss-{i}"):
                dismissed.add(suggestion.condition)
                st.rerun()
