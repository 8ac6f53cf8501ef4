"""Errors about bad input, phrased for the person who supplied it."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input: says which file, row and column, what is wrong and what to do.

    The UI and the CLI show `str(error)` as is, so the message must stand on its own.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ):
        self.problem, self.file, self.row, self.column, self.hint = problem, file, row, column, hint
        where = [part for part in (file, f"row {row:,}" if row is not None else None) if part]
        if column is not None:
            where.append(f"column '{column}'")
        text = (", ".join(where) + ": " if where else "") + problem
        if hint:
            text += f" {hint}"
        super().__init__(text)
