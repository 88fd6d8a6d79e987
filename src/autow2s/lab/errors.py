"""One error shape for every 4xx: {"error": what went wrong and what to do, "field": which input}.

Clients (and LLM researchers) act on the message, so it names the field and the fix. A 500
would mean a bug in the lab; everything a client can cause is answered with a 4xx.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("autow2s.lab")


class APIError(StarletteHTTPException):
    """A refusal the client can act on; `extra` keys are merged into the JSON body."""

    def __init__(self, status_code: int, message: str, *, field: str | None = None,
                 outcome: str = "invalid", headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.message = message
        self.field = field
        self.outcome = outcome
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field, **self.extra}


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'predictions', 3) -> 'predictions[3]'; ('query', 'limit') -> 'limit'."""
    parts = list(loc)
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += ("." if name else "") + str(part)
    return name or "body"


Body = TypeVar("Body", bound=BaseModel)


def json_body(model: type[Body]) -> Callable[[Request], Awaitable[Body]]:
    """A dependency that parses and validates a JSON body in one pass in pydantic-core.

    FastAPI's own body parameter runs the stdlib json module and then validates the Python objects, which for
    2,000 predictions costs 0.63 ms against 0.08 ms here. That is about a quarter of the lab's CPU per
    evaluation. Errors take the same path as FastAPI's, so they get the same 400/422 answers. Pair it with
    `json_body_openapi(model)`, so /openapi.json still documents the body.
    """
    async def parse(request: Request) -> Body:
        try:
            raw = await request.body()
        except ClientDisconnect:
            raise APIError(400, "body: the client disconnected before sending the whole body; send it again",
                           field="body") from None
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            raise RequestValidationError([{**error, "loc": ("body", *error["loc"])}
                                          for error in exc.errors(include_url=False)]) from None
    return parse


def json_body_openapi(model: type[BaseModel]) -> dict[str, Any]:
    """The route's `openapi_extra`: the body's schema, as FastAPI would document a body parameter."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _mark(request: Request, outcome: str, detail: str) -> None:
    request.scope.setdefault("state", {}).update({"outcome": outcome, "detail": detail[:500]})


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    _mark(request, exc.outcome, exc.message)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint {request.method} {request.url.path}; see /openapi.json for the API"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /openapi.json for the API"
    _mark(request, "invalid", message)
    return JSONResponse({"error": message, "field": None}, status_code=exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    fields = []
    for error in errors[:20]:
        field = field_name(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            reason = error.get("ctx", {}).get("error", "parse error")
            fields.append({"field": "body", "message": f"the body is not valid JSON ({reason})"})
        else:
            fields.append({"field": field, "message": str(error.get("msg", "invalid value"))})
    status = 400 if any(e.get("type") == "json_invalid" for e in errors) else 422
    first = fields[0] if fields else {"field": "body", "message": "invalid request"}
    message = f"{first['field']}: {first['message']}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    _mark(request, "invalid", message)
    return JSONResponse({"error": message, "field": first["field"], "errors": fields}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


class BodyLimitMiddleware:
    """Refuse oversized bodies with 413 before they are read, whether sized or chunked."""

    def __init__(self, app: ASGIApp, *, default_limit: int, limits: dict[str, int]) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits  # path prefix -> limit

    def _limit(self, path: str) -> int:
        for prefix, limit in self.limits.items():
            if path.startswith(prefix):
                return limit
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_json(send, 400, {"error": "the Content-Length header is not a number", "field": "Content-Length"})
                return
            if int(declared) > limit:
                await _send_json(send, 413, _too_large(limit))
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise APIError(413, _too_large(limit)["error"], field="body", outcome="too_large")
            return message

        await self.app(scope, limited_receive, send)


def _too_large(limit: int) -> dict[str, Any]:
    return {"error": f"the request body is larger than this endpoint's limit of {limit} bytes; send less "
                     "(predictions cover the test split once; snapshots hold only the method's code)",
            "field": "body"}


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})


class RunTakenOver(RuntimeError):
    """Another worker took a verified or transfer run over (this one stalled past verify.STALE_AFTER_S): its result
    is not ours to write. Here rather than in verify.py, so transfer.py needs nothing of verify.py's."""
