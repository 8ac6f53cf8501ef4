"""The application layer: every user action, once, for every front end.

Pages (`pages/`), the command line (`cli/`) and, next, the HTTP API call only this package to
change anything, and read through it what several of them show (the alert queue, a case, KPIs).
An action is a plain function taking a `Context` (the database and who is acting) and keyword
arguments, and returning a small result object that each front end renders its own way:

    result = labels.label(ctx, dataset_id, ["TX1", "TX2"], "fraud", note="card stolen", close=True)

Every action
1. validates its input, raising one of the `data.errors.UserError` kinds (invalid, not found,
   conflict, forbidden) with the field or file/row/column at fault: the same message everywhere;
2. does its long work (fitting, scoring, reading a file) before or inside one unit of work,
   `ctx.unit_of_work()`: begin, do the writes, commit once; any exception rolls it all back;
3. writes its audit row inside that same transaction (`data.audit.record`), before and after;
4. returns its result.

Storage functions in `data/` and model code in `detectors/` never open a transaction or write an
audit row themselves; they run inside the action's. Adding an action: one function here, one
test calling it directly (tests/unit/test_actions_*.py checks its audit row and its single
commit), then one line in each front end that exposes it.
"""
