"""Idempotency for every POST: the same key and body replay the first response; the same key
with another body is a conflict. The record commits in the same transaction as the write."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalty.api.deps import Principal
from loyalty.db.models import IdempotencyRecord
from loyalty.errors import ConflictError, UnprocessableError


async def request_digest(request: Request) -> str:
    """What identifies a request for idempotency: method, path and raw body (read in the event loop)."""
    return hashlib.sha256(request.method.encode() + request.url.path.encode() + await request.body()).hexdigest()


Digest = Annotated[str, Depends(request_digest)]


def idempotency_key(request: Request) -> str:
    key = request.headers.get("idempotency-key", "").strip()
    if not key or len(key) > 200:
        raise UnprocessableError("idempotency_key_required", "send an Idempotency-Key header (1 to 200 characters)")
    return key


def idempotent(
    request: Request,
    digest: str,
    session: Session,
    principal: Principal,
    write: Callable[[], tuple[int, Any]],
) -> JSONResponse:
    """Run `write` (returns status and body) once per Idempotency-Key, and commit."""
    key = idempotency_key(request)
    if (replay := replay_of(session, principal, key, digest)) is not None:
        return replay
    status, body = write()
    response = remember(session, principal, key, digest, status, body)
    try:
        session.commit()
    except IntegrityError:  # the same key raced us and won: answer as it did
        session.rollback()
        if (replay := replay_of(session, principal, key, digest)) is not None:
            return replay
        raise
    return response


def replay_of(session: Session, principal: Principal, key: str, digest: str) -> JSONResponse | None:
    """The first response to this key, or None if the key is new; a conflict if the body differs."""
    record = session.get(IdempotencyRecord, (principal.key_id, key))
    if record is None:
        return None
    if record.request_hash != digest:
        raise ConflictError("idempotency_conflict", f"Idempotency-Key {key!r} was used with a different request")
    return JSONResponse(
        json.loads(record.response_body), status_code=record.status_code, headers={"Idempotent-Replay": "true"}
    )


def remember(session: Session, principal: Principal, key: str, digest: str, status: int, body: Any) -> JSONResponse:
    """Record the response to this key in the current transaction (flushed, so a replay in the same
    transaction finds it); returns the response."""
    payload = jsonable_encoder(body)
    session.add(
        IdempotencyRecord(
            principal=principal.key_id,
            key=key,
            request_hash=digest,
            status_code=status,
            response_body=json.dumps(payload),
        )
    )
    session.flush()
    return JSONResponse(payload, status_code=status)
