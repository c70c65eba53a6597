"""Idempotency for every POST: the same key and body replay the first response; the same key
with another body is a conflict. The record commits in the same transaction as the write."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, NamedTuple

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import insert
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
    [response] = remember(session, [Answer(principal, key, digest, status, body)])
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
    return None if record is None else replay(record, digest)


def replay(record: IdempotencyRecord, digest: str) -> JSONResponse:
    if record.request_hash != digest:
        raise ConflictError("idempotency_conflict", f"Idempotency-Key {record.key!r} was used with a different request")
    return JSONResponse(
        json.loads(record.response_body), status_code=record.status_code, headers={"Idempotent-Replay": "true"}
    )


def remember(session: Session, answers: Sequence[Answer]) -> list[JSONResponse]:
    """Record the responses to these keys in the current transaction; returns the responses."""
    payloads = [jsonable_encoder(answer.body) for answer in answers]
    rows = [
        {
            "principal": answer.principal.key_id,
            "key": answer.key,
            "request_hash": answer.digest,
            "status_code": answer.status,
            "response_body": json.dumps(payload),
        }
        for answer, payload in zip(answers, payloads, strict=True)
    ]
    if rows:
        session.execute(insert(IdempotencyRecord), rows)
    return [JSONResponse(p, status_code=a.status) for a, p in zip(answers, payloads, strict=True)]


class Answer(NamedTuple):
    """The response to a request with an Idempotency-Key, to be recorded."""

    principal: Principal
    key: str
    digest: str
    status: int
    body: Any
