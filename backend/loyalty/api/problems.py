"""Every error leaves the API as `application/problem+json` with a stable `code` (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from loyalty.errors import (
    ChainMismatchError,
    ChainRevertError,
    ChainUnavailableError,
    DomainError,
    ErrorCode,
    RetryLaterError,
)

log = logging.getLogger("loyalty.api")
PROBLEM_TYPE = "https://loyalty-ledger.dev/problems/"
_CODES_BY_STATUS = {
    code.status: code
    for code in (
        ErrorCode.MALFORMED_BODY,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.FORBIDDEN,
        ErrorCode.NOT_FOUND,
        ErrorCode.METHOD_NOT_ALLOWED,
        ErrorCode.BODY_TOO_LARGE,
    )
}


class Problem(BaseModel):
    """An error (RFC 9457): `code` is stable, for programs; `detail` is for people."""

    type: str
    title: str
    status: int
    detail: str
    code: ErrorCode


# What any operation may answer besides its success, as problem documents.
ERRORS = {
    400: "the body is not JSON (`malformed_body`)",
    401: "no key, or an unknown one (`unauthorized`)",
    403: "the key's role may not do this (`forbidden`)",
    404: "no such resource (`*_not_found`)",
    409: "a conflict: the resource exists, the Idempotency-Key was used with another body, a consent was used",
    413: "the body is too large (`body_too_large`)",
    429: "too many attempts (`too_many_attempts`): retry after `Retry-After` seconds",
    422: "the request is malformed or refused by the program's rules (`validation_error`, `budget_exceeded`, ...)",
    503: "the database or the chain is unavailable (`storage_unavailable`, `chain_unavailable`), no exchange is "
    "configured (`exchange_not_configured`), or the service is "
    "busy (`busy`, with `Retry-After`): retry",
}


def document(schema: dict[str, Any], roles: dict[tuple[str, str], list[str]]) -> dict[str, Any]:
    """Declare in the OpenAPI what the handlers here do: every error as application/problem+json
    with its status codes, the Idempotency-Key header as required on every POST, and who may
    call each operation (`x-roles`, from `roles` by path and method)."""
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(problem_schema.pop("$defs", {}))  # ErrorCode: every code, as an enum
    components["Problem"] = problem_schema
    schema["components"]["schemas"].pop("HTTPValidationError", None)
    schema["components"]["schemas"].pop("ValidationError", None)
    content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            operation["x-roles"] = roles[(path, method)]
            responses = operation.setdefault("responses", {})
            for code in [] if path == "/v1/health" else ERRORS:
                responses[str(code)] = {"description": ERRORS[code], "content": content}
            if method == "post":
                for parameter in operation.get("parameters", []):
                    if parameter["name"] == "Idempotency-Key":
                        parameter["required"] = True
                        parameter["schema"] = {"type": "string", "minLength": 1, "maxLength": 200}
    return schema


def _allowed(request: Request) -> list[str]:
    """Every method the request's path has. The app lists its routes in `state.api_routes`
    (FastAPI wraps included routers, so `app.routes` does not hold them)."""
    methods: set[str] = set()
    for route in request.app.state.api_routes:
        if route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


def problem(code: ErrorCode, detail: str, *, status: int | None = None, **extra: Any) -> JSONResponse:
    """A problem document; `status` only where the code's own does not fit (an HTTP error
    Starlette raised with a status no code has)."""
    status = status or code.status
    body = {
        "type": PROBLEM_TYPE + code.value,
        "title": code.problem_title,
        "status": status,
        "detail": detail,
        "code": code.value,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def install(app: FastAPI) -> None:
    """Map domain errors, validation errors and HTTP errors to problems."""

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        response = problem(exc.code, exc.detail)
        if isinstance(exc, RetryLaterError):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem(ErrorCode.VALIDATION_ERROR, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES_BY_STATUS.get(exc.status_code, ErrorCode.HTTP_ERROR)
        response = problem(code, str(exc.detail), status=exc.status_code)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405 and (allowed := _allowed(request)):  # every method the path has
            response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.exception_handler(ChainRevertError)
    async def _revert(_: Request, exc: ChainRevertError) -> JSONResponse:
        return problem(ErrorCode.CHAIN_REJECTED, str(exc))

    @app.exception_handler(OperationalError)
    async def _storage_down(_: Request, exc: OperationalError) -> JSONResponse:
        # A database that is down or locked past its timeout: the request wrote nothing; retry it.
        return problem(ErrorCode.STORAGE_UNAVAILABLE, str(exc.orig))

    @app.exception_handler(ChainUnavailableError)
    async def _chain_down(_: Request, exc: ChainUnavailableError) -> JSONResponse:
        if isinstance(exc, ChainMismatchError):
            return problem(ErrorCode.CHAIN_MISMATCH, str(exc))
        return problem(ErrorCode.CHAIN_UNAVAILABLE, str(exc))

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not the caller's fault: still a problem document, never a bare text page.
        log.error("unhandled error", exc_info=exc)
        return problem(ErrorCode.INTERNAL_ERROR, "the service failed to answer; it was logged")
