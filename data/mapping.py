"""Column roles: what each of a file's columns means to Centinela, and guessing them from names.

A mapping assigns source columns to single-valued roles (timestamp, amount, customer id, ...)
and lists extra categorical and numeric columns to keep. The timestamp may come from two
columns, a date and a time of day (`--map timestamp=fecha+hora`). Stored columns get canonical names
(`ts`, `amount`, `customer_id`, ...) so features and detectors work on any file's shape.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from data.errors import InvalidInput


@dataclass(frozen=True)
class Role:
    name: str  # role name used in mappings and on the command line
    column: str  # canonical column name in the dataset table
    sql_type: str
    title: str
    help: str
    required: bool = False
    aliases: tuple[str, ...] = ()


ROLES: tuple[Role, ...] = (
    Role("transaction_id", "transaction_id", "VARCHAR", "Transaction id", "Unique per row; generated from the row number when unmapped.",
         aliases=("transaction_id", "tx_id", "txn_id", "trans_id", "transactionid", "transaction_number", "trans_num", "id_transaccion", "id")),
    Role("timestamp", "ts", "TIMESTAMP", "Timestamp", "When the transaction happened (date or date and time).", required=True,
         aliases=("timestamp", "ts", "tx_datetime", "transaction_datetime", "transaction_timestamp", "datetime", "trans_date_trans_time",
                  "transaction_date", "transaction_time", "event_time", "created_at", "fecha_hora", "fecha", "date", "time")),
    Role("amount", "amount", "DOUBLE", "Amount (PEN)", "Transaction amount; currency prefixes like 'S/' and thousands separators are removed.", required=True,
         aliases=("amount", "tx_amount", "transaction_amount", "amt", "monto", "importe", "amount_pen", "value")),
    Role("customer_id", "customer_id", "VARCHAR", "Customer / card id", "Who paid; enables per-customer history features.",
         aliases=("customer_id", "user_id", "card_id", "client_id", "account_id", "cc_num", "card_number", "cliente_id", "customer", "user")),
    Role("merchant_id", "merchant_id", "VARCHAR", "Merchant / terminal id", "Where it was paid; enables merchant features.",
         aliases=("merchant_id", "terminal_id", "merchant", "store_id", "restaurant_id", "comercio_id", "comercio", "terminal")),
    Role("device_id", "device_id", "VARCHAR", "Device id", "The customer's device; enables first-use-of-device.",
         aliases=("device_id", "device", "dispositivo")),
    Role("city", "city", "VARCHAR", "City / location", "Free-text place; Peruvian cities and Lima districts resolve to coordinates.",
         aliases=("city", "location", "merchant_city", "customer_location", "ciudad", "distrito", "district", "place")),
    Role("lat", "lat", "DOUBLE", "Latitude", "Decimal degrees.", aliases=("lat", "latitude", "merch_lat", "latitud")),
    Role("lon", "lon", "DOUBLE", "Longitude", "Decimal degrees.", aliases=("lon", "lng", "long", "longitude", "merch_long", "longitud")),
    Role("label", "is_fraud", "BOOLEAN", "Fraud label (ground truth)", "1/0, true/false, yes/no, fraud/legit; optional.",
         aliases=("is_fraud", "fraud", "fraudulent", "is_fraudulent", "tx_fraud", "fraudulent_activity", "isfraud", "fraude", "label", "class")),
    Role("fraud_scenario", "fraud_scenario", "VARCHAR", "Fraud scenario", "Kind of fraud, where the data says; optional.",
         aliases=("fraud_scenario", "tx_fraud_scenario", "scenario", "fraud_type")),
)
ROLE_BY_NAME = {r.name: r for r in ROLES}
MULTI_ROLES = ("categorical", "numeric")
CANONICAL_COLUMNS = {"tx_row"} | {r.column for r in ROLES}
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL")


@dataclass
class ColumnMapping:
    """Source column per role, plus extra columns kept as categorical or numeric."""

    roles: dict[str, str] = field(default_factory=dict)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    time_column: str | None = None  # the time of day, when the timestamp column holds only the date

    def source_columns(self) -> list[str]:
        return [*self.roles.values(), *([self.time_column] if self.time_column else []), *self.categorical, *self.numeric]

    @property
    def timestamp_source(self) -> str | None:
        """The timestamp's source as the report names it: `fecha` or `fecha+hora`."""
        column = self.roles.get("timestamp")
        return f"{column}+{self.time_column}" if column and self.time_column else column

    def as_dict(self) -> dict:
        return {"roles": self.roles, "time_column": self.time_column, "categorical": self.categorical,
                "numeric": self.numeric}

    def validate(self, columns: list[str], file: str | None = None) -> ColumnMapping:
        """Raise InvalidInput unless every required role is mapped to one existing column, once."""
        unknown = [r for r in self.roles if r not in ROLE_BY_NAME]
        if unknown:
            raise InvalidInput(f"unknown role {unknown[0]!r}.", file=file,
                               hint=f"Roles are: {', '.join([*ROLE_BY_NAME, *MULTI_ROLES])}.")
        for role in ROLES:
            if role.required and not self.roles.get(role.name):
                raise InvalidInput(
                    f"no column is mapped to the required role '{role.name}' ({role.title}).",
                    file=file,
                    hint=f"Map one of the file's columns ({', '.join(columns[:12])}) to it, "
                    f"e.g. --map {role.name}=COLUMN.",
                )
        if self.time_column and not self.roles.get("timestamp"):
            raise InvalidInput(f"a time column ({self.time_column!r}) is set but no date column for the timestamp.",
                               file=file, hint="Map the timestamp as DATE_COLUMN+TIME_COLUMN.")
        missing = [c for c in self.source_columns() if c not in columns]
        if missing:
            raise InvalidInput(f"the mapping names a column the file does not have: {missing[0]!r}.",
                               file=file, hint=f"The file's columns are: {', '.join(columns)}.")
        used = self.source_columns()
        twice = sorted({c for c in used if used.count(c) > 1})
        if twice:
            raise InvalidInput(f"column {twice[0]!r} is mapped to more than one role.", file=file,
                               hint="Map each column to one role only.")
        return self

    def with_overrides(self, overrides: list[str], columns: list[str]) -> ColumnMapping:
        """Apply ROLE=COLUMN settings (command line); ROLE= unmaps; categorical/numeric take a comma list;
        timestamp=DATE+TIME combines a date column and a time column."""
        mapping = ColumnMapping(dict(self.roles), list(self.categorical), list(self.numeric), self.time_column)
        for item in overrides:
            role, sep, column = item.partition("=")
            role = role.strip()
            if not sep:
                raise InvalidInput(f"--map {item!r} is not ROLE=COLUMN.")
            if role in MULTI_ROLES:
                chosen = [c.strip() for c in column.split(",") if c.strip()]
                setattr(mapping, role, chosen)
                for c in chosen:  # a column moved here leaves any other place it had
                    mapping._take(c)
                setattr(mapping, role, chosen)
                continue
            if role not in ROLE_BY_NAME:
                raise InvalidInput(f"unknown role {role!r} in --map {item!r}.",
                                   hint=f"Roles are: {', '.join([*ROLE_BY_NAME, *MULTI_ROLES])}.")
            if not column:
                mapping.roles.pop(role, None)
                if role == "timestamp":
                    mapping.time_column = None
                continue
            if role == "timestamp":
                column = mapping._set_time_column(item, column, columns)
            if column not in columns:
                raise InvalidInput(f"--map {item!r} names a column the file does not have.",
                                   hint=f"The file's columns are: {', '.join(columns)}.")
            mapping._take(column)
            mapping.roles[role] = column
        return mapping

    def _take(self, column: str) -> None:
        """Remove `column` from wherever else it is mapped."""
        self.roles = {r: s for r, s in self.roles.items() if s != column}
        self.categorical = [c for c in self.categorical if c != column]
        self.numeric = [c for c in self.numeric if c != column]
        if self.time_column == column:
            self.time_column = None

    def _set_time_column(self, item: str, value: str, columns: list[str]) -> str:
        """For timestamp=VALUE: a column named VALUE, or DATE+TIME; sets the time column, returns the date column."""
        if value in columns or "+" not in value:
            self.time_column = None
            return value
        date_column, _, time_column = (part.strip() for part in value.rpartition("+"))
        for part in (date_column, time_column):
            if part not in columns:
                raise InvalidInput(f"--map {item!r} names a column the file does not have: {part!r}.",
                                   hint=f"The file's columns are: {', '.join(columns)}.")
        self._take(time_column)
        self.time_column = time_column
        return date_column


def normalize_name(name: str) -> str:
    """snake_case ASCII form of a column name, for matching and for stored extra columns."""
    plain = "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))
    plain = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", plain)  # transactionAmount -> transaction_amount
    return re.sub(r"[^a-z0-9]+", "_", plain.lower()).strip("_")


def guess_mapping(columns: list[tuple[str, str]]) -> ColumnMapping:
    """Guess roles from column names; other columns become categorical or numeric extras by type.

    `columns` are (name, DuckDB type) pairs; for CSV files the type comes from the preview rows.
    """
    normalized = {name: normalize_name(name) for name, _ in columns}
    roles: dict[str, str] = {}
    taken: set[str] = set()
    for role in ROLES:
        for alias in role.aliases:  # aliases are in order of preference
            match = next((n for n, norm in normalized.items() if norm == alias and n not in taken), None)
            if match:
                roles[role.name] = match
                taken.add(match)
                break
    categorical, numeric = [], []
    for name, sql_type in columns:
        if name in taken:
            continue
        base = sql_type.split("(")[0].upper()
        if base in NUMERIC_TYPES:
            numeric.append(name)
        elif base in ("VARCHAR", "BOOLEAN"):
            categorical.append(name)
    return ColumnMapping(roles, categorical, numeric)


def stored_name(source: str, taken: set[str]) -> str:
    """The column name an extra column is stored under: snake_case, unique, never canonical."""
    base = normalize_name(source)[:56] or "column"
    if base[0].isdigit():
        base = f"c_{base}"
    name, n = base, 1
    while name in taken or name in CANONICAL_COLUMNS:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name
