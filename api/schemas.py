"""The API's request and response bodies (pydantic), which its OpenAPI document at /api/docs shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from data.cases import MAX_IDS, MAX_NOTE
from data.errors import InvalidInput
from data.live import MAX_BATCH, MAX_ID, MAX_TEXT


class TransactionIn(BaseModel):
    """One transaction, keyed by the import roles; the dataset's extra columns go by their stored
    names (any other field is refused)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "transaction_id": "TX-2024-000001", "timestamp": "2024-05-01T13:45:00-05:00", "amount": 129.9,
        "customer_id": "C0001234", "merchant_id": "M000321", "device_id": "D00004567", "city": "Miraflores"}]})

    transaction_id: str = Field(min_length=1, max_length=MAX_ID)
    timestamp: datetime = Field(description="ISO 8601; with an offset it is converted to the dataset's time zone, "
                                            "without one it is wall time there")
    amount: float = Field(allow_inf_nan=False, description="PEN; negative for a refund")
    customer_id: str | None = Field(None, max_length=MAX_TEXT)
    merchant_id: str | None = Field(None, max_length=MAX_TEXT)
    device_id: str | None = Field(None, max_length=MAX_TEXT)
    city: str | None = Field(None, max_length=MAX_TEXT)
    lat: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False)
    lon: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False)

    @field_validator("amount", "lat", "lon", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        # pydantic's lax mode reads true as 1.0: an amount of true is a sender's bug, not one sol.
        if isinstance(value, bool):
            raise ValueError("must be a number, not true or false")
        return value


def decision_json(decision: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A decision as the score route answers it (the Decision model, JSON types), plus `extra`."""
    return {**extra, **Decision.model_validate(decision).model_dump(mode="json")}


def transaction_item(raw: dict[str, Any]) -> dict[str, Any]:
    """One transaction as the score route hands it to the application layer (checked and converted
    by TransactionIn); other front ends (the Kafka consumer) use this to check theirs the same way."""
    try:
        return TransactionIn.model_validate(raw).model_dump(exclude_unset=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or None
        raise InvalidInput(f"{first.get('msg', 'invalid value')}.", field=field) from None


class ScoreRequest(BaseModel):
    transactions: list[TransactionIn] = Field(min_length=1, max_length=MAX_BATCH)


class Reason(BaseModel):
    feature: str
    value: Any = None
    contribution: float = Field(description="How much the score drops when this feature takes its usual value")


class ModelRef(BaseModel):
    run: int
    kind: Literal["detector", "supervised"]
    detector: str
    feature_version: str | None = None


class Decision(BaseModel):
    transaction_id: str
    score: float
    alert: bool
    threshold: float
    model: ModelRef
    reasons: list[Reason]
    rules: list[str] = Field(default_factory=list, description="Active rules and lists that raised the alert, and "
                             "'suppressed by NAME' for an allow rule or list (empty on a stored decision read back)")
    api_key: str | None = None
    received_at: datetime | None = None


class ScoreResponse(BaseModel):
    decisions: list[Decision]
    stored: int = Field(description="Transactions stored by this request (the others were already stored: retries)")
    alerts: int


class LabelRequest(BaseModel):
    """Label transactions, as an analyst does on the case page (one undoable action)."""

    transaction_ids: list[str] = Field(min_length=1, max_length=MAX_IDS)
    label: Literal["fraud", "legitimate", "unsure"]
    note: str | None = Field(None, max_length=MAX_NOTE)
    close: bool = Field(False, description="A fraud or legitimate label also closes the cases")


class LabelResponse(BaseModel):
    batch_id: str
    count: int
    label: str | None
    closed: bool


class TransactionOut(BaseModel):
    transaction: dict[str, Any]
    decision: Decision | None
    label: str | None


class DatasetHealth(BaseModel):
    name: str
    rows: int
    active_run: int | None
    kind: str | None
    model_loaded: bool | None = None
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    datasets: list[DatasetHealth]


class ErrorBody(BaseModel):
    code: str
    message: str
    item: int | None = None
    field: str | None = None
    hint: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
