"""The errors a person can cause, phrased for them: one family, four kinds.

Every front end shows these the same way: a page as an error box, the command line as
`error: ...` with exit status 2, the HTTP API as JSON with the kind's status code. Anything that
is not a `UserError` is a bug and surfaces as one (a traceback, a 500), never as a message that
blames the input. That is why the family does not derive from `ValueError`: a `ValueError`
raised by a library deep inside a computation must not be shown as if the user caused it.

Where the error is pinned down, it says so: a file, row and column for imports, an item and a
field for requests. `str(error)` stands on its own: location, problem, hint.
"""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """Base of the family; raise one of the kinds below."""

    status = 422
    code = "invalid"

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        item: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ):
        self.problem, self.hint = problem, hint
        self.file, self.row, self.column, self.item, self.field = file, row, column, item, field
        where = [part for part in (file, f"row {row:,}" if row is not None else None,
                                   f"item {item:,}" if item is not None else None) if part]
        if column is not None:
            where.append(f"column '{column}'")
        if field is not None:
            where.append(f"field '{field}'")
        text = (", ".join(where) + ": " if where else "") + problem
        if hint:
            text += f" {hint}"
        super().__init__(text)

    @property
    def location(self) -> dict[str, Any]:
        """Where the problem is, as structured data (for JSON answers): only what is known."""
        parts = {"file": self.file, "row": self.row, "column": self.column, "item": self.item, "field": self.field}
        return {k: v for k, v in parts.items() if v is not None}


class InvalidInput(UserError):
    """The input is malformed or out of range (HTTP 422)."""


class NotFound(UserError):
    """What the input names does not exist (HTTP 404)."""

    status = 404
    code = "not_found"


class Conflict(UserError):
    """The input is fine but clashes with the current state: a name taken, an action already
    undone, the last admin (HTTP 409)."""

    status = 409
    code = "conflict"


class Forbidden(UserError):
    """The user may not do this (HTTP 403)."""

    status = 403
    code = "forbidden"
