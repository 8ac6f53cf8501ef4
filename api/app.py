"""The HTTP API (FastAPI), mounted at /api beside the pages by serve.py: each route parses its
request, authenticates the key, calls one function of the application layer and renders its
result. Errors come from one family (data.errors) and are answered as JSON with the kind's status
and where the problem is (item index and field)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import commands, metrics
from api.schemas import (
    ErrorResponse,
    Health,
    LabelRequest,
    LabelResponse,
    ScoreRequest,
    ScoreResponse,
    TransactionOut,
)
from application import keys, labels, live, stamped
from application.context import Context
from data.db import database_path, thread_cursor
from data.errors import Forbidden, NotFound, UserError
from data.keys import ApiKey

MAX_BODY = 8 * 1024 * 1024  # bytes: 10,000 transactions of ~500 bytes fit with room
TOO_LARGE_HINT = "Send at most 10,000 transactions per request."
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 413, 422)}

DESCRIPTION = """Score transactions as they happen, label them from other systems, read them back.

Send the key as `Authorization: Bearer <key>` (create one on the Users & audit page, or with
`centinela keys create NAME --scope score,label,read`).

**Reasons.** Each decision carries the three features that raised its score most, by occlusion:
the score again with the feature at its usual value (the mean model input over training rows),
for every decision; the case page shows SHAP attributions.

**Retries.** A batch is all or nothing. Sending a transaction id again with the same values
returns its stored decision and stores nothing; with other values it is a 409.
"""


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        seen = [0]

        async def counting() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > self.limit:
                    # An HTTPException: FastAPI turns any other exception raised while it reads the
                    # body into a 400 "error parsing the body"; this one reaches `http_error`.
                    raise StarletteHTTPException(413, _too_large_text(self.limit))
            return message

        await self.app(scope, counting, send)


def _too_large_text(limit: int) -> str:
    return f"the request body is over {limit // (1024 * 1024)} MiB."


def _too_large(limit: int) -> JSONResponse:
    return _error(413, "too_large", _too_large_text(limit), field="body", hint=TOO_LARGE_HINT)


def _error(status: int, code: str, message: str, **where: Any) -> JSONResponse:
    body = {"code": code, "message": message, **{k: v for k, v in where.items() if v is not None}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def context(request: Request) -> Context:
    """The request's context, made in the thread that runs the endpoint: its cursor is that
    thread's (a sync dependency runs on another pool thread, whose cursor another request may be
    using at the same time; and it is one more hop, about 1 ms)."""
    return Context(thread_cursor(), "api", database=str(database_path().resolve()))


def key_secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-api-key")


def _authorised(request: Request, ctx: Context, scope: str, dataset: str | None) -> tuple[Context, ApiKey, int | None]:
    at = stamped.stamp(ctx.conn, ctx.database)
    key = keys.authenticate(ctx, key_secret(request), scope, at=at)
    if dataset is not None and key.dataset_id is not None and dataset != _own_dataset(ctx, key):
        # Before the name is looked up: a key for one dataset must not learn which others exist
        # (a 404 for unknown names, with the available ones listed, would tell it).
        raise Forbidden(f"API key {key.name!r} is for another dataset.", field="dataset")
    dataset_id = _dataset_id(ctx, dataset, at) if dataset is not None else None
    keys.check_dataset(key, dataset_id)
    return Context(ctx.conn, keys.actor(key), clock=ctx.clock, database=ctx.database), key, dataset_id


def _dataset_id(ctx: Context, name: str, at: stamped.Stamp) -> int:
    """A dataset's id by name, kept while nothing changed (a rename or delete is an action)."""
    return stamped.kept(at, ("dataset_id", name), lambda: ctx.dataset(name).id)


def _own_dataset(ctx: Context, key: ApiKey) -> str | None:
    """The name of the one dataset a key may use; None once that dataset is deleted."""
    try:
        return ctx.dataset(key.dataset_id).name
    except NotFound:
        return None


def _location(loc: tuple[Any, ...]) -> tuple[int | None, str | None]:
    """The item index and field of a pydantic error location like ('body', 'transactions', 3, 'amount')."""
    parts = [p for p in loc if p != "body"]
    item = next((p for p in parts if isinstance(p, int)), None)
    names = [str(p) for p in parts if not isinstance(p, int)]
    field = names[-1] if names else "body"
    if item is not None and names and names[-1] in ("transactions", "transaction_ids") and len(names) == 1:
        field = names[0]
    return item, field


def create_api() -> FastAPI:
    api = FastAPI(title="Centinela API", version="1", description=DESCRIPTION, docs_url="/docs", redoc_url=None,
                  openapi_url="/openapi.json")

    @api.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.problem, item=exc.item, field=exc.field or exc.column, hint=exc.hint)

    @api.exception_handler(keys.Unauthenticated)
    async def unauthenticated(request: Request, exc: keys.Unauthenticated) -> JSONResponse:
        return _error(401, "unauthenticated", str(exc))

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            position = first.get("loc", ("body", None))[-1]
            return _error(422, "invalid", f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')}"
                                          f" at character {position}).", field="body")
        item, field = _location(tuple(first.get("loc", ())))
        message = first.get("msg", "invalid value")
        return _error(422, "invalid", f"{message}.", item=item, field=field)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        text = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in text:
            text = "the body could not be read as JSON (not UTF-8, or nested too deeply)."
        if exc.status_code == 413:
            return _error(413, "too_large", text, field="body", hint=TOO_LARGE_HINT)
        return _error(exc.status_code, "bad_request" if exc.status_code == 400 else "http_error", text, field="body")

    @api.get("/v1/health", response_model=Health, tags=["service"], summary="Database open, active models loaded")
    def health(request: Request) -> JSONResponse:
        report = live.health(context(request))
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    @api.post("/v1/datasets/{dataset}/transactions", response_model=ScoreResponse, responses=ERRORS, tags=["scoring"],
              summary="Store and score transactions (1 to 10,000; all or nothing)")
    def score(dataset: str, body: ScoreRequest, request: Request) -> Response:
        acting, key, _ = _authorised(request, context(request), "score", dataset)
        items = [t.model_dump(exclude_unset=True) for t in body.transactions]
        scored = live.score(acting, dataset, items, api_key=acting.actor)
        metrics.observe_scored(scored.dataset.name, scored.new_scores, scored.alerts)
        checked = ScoreResponse.model_validate({"decisions": scored.decisions, "stored": scored.stored,
                                                "alerts": scored.alerts})
        # Serialised once by the checked model itself (returned as a model, FastAPI would check and
        # serialise it again: 0.7 ms a request); the OpenAPI document still names ScoreResponse.
        return Response(checked.model_dump_json(), media_type="application/json")

    @api.get("/v1/datasets/{dataset}/transactions/{transaction_id}", response_model=TransactionOut, responses=ERRORS,
             tags=["scoring"], summary="A stored transaction, its decision and its current label")
    def read(dataset: str, transaction_id: str, request: Request) -> TransactionOut:
        acting, _, _ = _authorised(request, context(request), "read", dataset)
        return TransactionOut.model_validate(live.read_transaction(acting, dataset, transaction_id))

    @api.post("/v1/datasets/{dataset}/labels", response_model=LabelResponse, responses=ERRORS, tags=["labels"],
              summary="Label transactions (chargebacks, confirmed fraud), attributed to the key")
    def label(dataset: str, body: LabelRequest, request: Request) -> LabelResponse:
        acting, _, _ = _authorised(request, context(request), "label", dataset)
        done = labels.label(acting, dataset, body.transaction_ids, body.label, note=body.note, close=body.close)
        return LabelResponse(batch_id=done.batch_id, count=done.count, label=done.label, closed=done.closed)

    commands.register(api, context, key_secret)
    api.add_middleware(BodyLimit)
    api.add_middleware(metrics.MetricsMiddleware)
    return api
