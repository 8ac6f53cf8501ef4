"""The column-mapping editor: one selectbox per role, pre-filled with the guess."""

from __future__ import annotations

import streamlit as st

from data.ingest import FileInfo
from data.mapping import ROLES, ColumnMapping

NONE = "(none)"
# The import options as the page offers them: label -> the value ImportOptions takes (None: detect).
DECIMAL_CHOICES = {"Detect from the values": None, "'.' as in 1,234.56": ".", "',' as in 1.234,56": ","}
ORDER_CHOICES = {"Detect from the values": None, "Day first (31/01/2024)": "dmy", "Month first (01/31/2024)": "mdy"}
EPOCH_CHOICES = {"Detect from the values": None, "Unix time in seconds": "s", "Unix time in milliseconds": "ms"}


def mapping_editor(info: FileInfo, key: str) -> ColumnMapping:
    """Render the mapping for `info` (inside a form) and return what the user chose."""
    guess = info.guessed_mapping()
    options = [NONE, *info.column_names]
    roles: dict[str, str] = {}
    left, right = st.columns(2)
    for i, role in enumerate(ROLES):
        current = guess.roles.get(role.name)
        box = left if i % 2 == 0 else right
        chosen = box.selectbox(
            role.title + (" *" if role.required else ""),
            options,
            index=options.index(current) if current in options else 0,
            key=f"{key}-role-{role.name}",
            help=role.help,
        )
        if chosen != NONE:
            roles[role.name] = chosen
    time_column = st.selectbox(
        "Time of day, in its own column", options,
        index=options.index(guess.time_column) if guess.time_column in options else 0, key=f"{key}-time-column",
        help="When the timestamp column holds only the date (fecha) and another column the time (hora), "
        "the two are combined into the timestamp (--map timestamp=fecha+hora).")
    categorical = st.multiselect("Keep as categorical columns", info.column_names, default=guess.categorical,
                                 key=f"{key}-categorical", help="Text columns such as payment method or channel.")
    numeric = st.multiselect("Keep as numeric columns", info.column_names, default=guess.numeric,
                             key=f"{key}-numeric", help="Numbers such as balance or customer age.")
    time_column = None if time_column == NONE else time_column
    # A column given a role (or the time of day) is no longer kept as an extra: the role wins, as
    # with --map on the command line.
    used = {*roles.values(), time_column}
    return ColumnMapping(roles, [c for c in categorical if c not in used], [c for c in numeric if c not in used],
                         time_column)
