"""Idempotency for every POST: the same key and body replay the first response; the same key
with another body is a conflict. The record commits in the same transaction as the write, and
is kept for `idempotency_ttl_s` (24 hours by default): after that the key may be used afresh."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any, NamedTuple

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalty.api.deps import Principal
from loyalty.chain.custody import Custody
from loyalty.db.models import IdempotencyRecord, utcnow
from loyalty.db.session import write_lock
from loyalty.errors import ConflictError, ErrorCode, UnprocessableError


async def request_digest(
    request: Request,
    _key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="required: 1 to 200 characters naming this write; a retry with the same key and "
            "body gets the first answer again (for 24 hours)",
        ),
    ] = None,
) -> str:
    """What identifies a request for idempotency: method, path and the body as canonical JSON
    (keys sorted, no spaces), so the same JSON sent with other spacing or key order is a
    replay, not a conflict; a body that is not JSON counts as its bytes. Read in the event loop.
    Declares the Idempotency-Key header for the docs; `idempotency_key` checks it."""
    return hashlib.sha256(
        request.method.encode() + request.url.path.encode() + canonical(await request.body())
    ).hexdigest()


def canonical(body: bytes) -> bytes:
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse: its bytes
        return body


Digest = Annotated[str, Depends(request_digest)]


def idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key", "").strip()
    if not key or len(key) > 200:
        raise UnprocessableError(
            ErrorCode.IDEMPOTENCY_KEY_REQUIRED, "send an Idempotency-Key header (1 to 200 characters)"
        )
    return key


def idempotent(
    request: Request,
    digest: str,
    session: Session,
    principal: Principal,
    write: Callable[[], tuple[int, Any]],
    *,
    secret: bool = False,
) -> JSONResponse:
    """Run `write` (returns status and body) once per Idempotency-Key, and commit.

    Requests with the same key take turns (a lock on the key), so a retry racing its original
    waits and replays its answer. A response holding a `secret` (a new API key) is stored
    sealed under the master key."""
    key = idempotency_key(request)
    ttl_s = request.app.state.settings.idempotency_ttl_s
    custody = request.app.state.runtime.custody
    for attempt in range(2):
        with key_lock(session, principal, key):
            if (replay := replay_of(session, principal, key, digest, ttl_s, custody)) is not None:
                return replay
            try:
                status, body = write()
                [response] = remember(
                    session, [Answer(principal, key, digest, status, body)], custody if secret else None
                )
                session.commit()
                return response
            except IntegrityError:
                # A concurrent write with another key took a unique name first (a member's
                # external id, a payment reference): answer again, now that it is visible (as
                # `member_exists` or `payment_used`, say).
                session.rollback()
                if attempt:
                    raise
    raise AssertionError("unreachable")


@contextmanager
def key_lock(session: Session, principal: Principal, key: str) -> Iterator[None]:
    """Serialize requests with one Idempotency-Key: on PostgreSQL an advisory lock on the key
    for the transaction; on SQLite the database's write lock (writes take turns there anyway,
    and holding it before the first read keeps the transaction's snapshot fresh)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"{principal.key_id}|{key}"}
        )
        yield
    else:
        with write_lock(session):
            yield


def replay_of(
    session: Session, principal: Principal, key: str, digest: str, ttl_s: int, custody: Custody
) -> JSONResponse | None:
    """The first response to this key, or None if the key is new (or was last used longer ago
    than `ttl_s`); a conflict if the body differs."""
    record = session.get(IdempotencyRecord, (principal.key_id, key))
    if record is None:
        return None
    if record.created_at < utcnow() - timedelta(seconds=ttl_s):
        session.delete(record)
        session.flush()
        return None
    return replay(record, digest, custody)


def replay(record: IdempotencyRecord, digest: str, custody: Custody | None = None) -> JSONResponse:
    if record.request_hash != digest:
        raise ConflictError(
            ErrorCode.IDEMPOTENCY_CONFLICT, f"Idempotency-Key {record.key!r} was used with a different request"
        )
    body = record.response_body
    if record.sealed:
        assert custody is not None
        body = custody.open_data(base64.b64decode(body), _context(record.principal, record.key)).decode()
    return JSONResponse(json.loads(body), status_code=record.status_code, headers={"Idempotent-Replay": "true"})


def remember(session: Session, answers: Sequence[Answer], custody: Custody | None = None) -> list[JSONResponse]:
    """Record the responses to these keys in the current transaction; returns the responses.
    With `custody`, bodies are stored sealed (they hold a secret)."""
    payloads = [_payload(answer.body) for answer in answers]
    rows = []
    for answer, payload in zip(answers, payloads, strict=True):
        body = json.dumps(payload)
        if custody is not None:
            body = base64.b64encode(
                custody.seal_data(body.encode(), _context(answer.principal.key_id, answer.key))
            ).decode()
        rows.append(
            {
                "principal": answer.principal.key_id,
                "key": answer.key,
                "request_hash": answer.digest,
                "status_code": answer.status,
                "response_body": body,
                "sealed": custody is not None,
            }
        )
    if rows:
        session.execute(insert(IdempotencyRecord), rows)
    return [JSONResponse(p, status_code=a.status) for a, p in zip(answers, payloads, strict=True)]


def _payload(body: Any) -> Any:
    """A response body as JSON values: a model dumps itself (twenty times faster than FastAPI's
    `jsonable_encoder`, which walks it value by value)."""
    return body.model_dump(mode="json") if isinstance(body, BaseModel) else jsonable_encoder(body)


def _context(principal: str, key: str) -> bytes:
    return f"idempotency|{principal}|{key}".encode()


class Answer(NamedTuple):
    """The response to a request with an Idempotency-Key, to be recorded."""

    principal: Principal
    key: str
    digest: str
    status: int
    body: Any
