"""Group commit for earns: every earn request the API accepts is written by one thread, many
requests to a transaction.

Hundreds of small write transactions a second, each from its own request thread, queue on the
database's write lock (SQLite has one writer; PostgreSQL serializes on the partner row that holds
the budget). One thread that commits whatever has queued meanwhile pays for one commit per group
instead, and no request waits behind another's lock back-off.

The group's requests are checked together (one query for replayed keys, one for members, one
for budgets) and written together (one UPDATE per partner's budget, one INSERT of earns, one of
idempotency records). A refused request writes nothing and does not hold up the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy import select, tuple_

from loyalty.api.deps import Principal
from loyalty.api.idempotency import Answer, remember, replay
from loyalty.db.models import IdempotencyRecord, utcnow
from loyalty.db.session import write_lock
from loyalty.domain.earning import EarnItem, EarnRequest
from loyalty.errors import ConflictError, DomainError, ErrorCode
from loyalty.runtime import Runtime
from loyalty.services import earning
from loyalty.services.uow import UnitOfWork

log = logging.getLogger("loyalty.acceptor")
MAX_GROUP_ITEMS = 20_000  # earns per transaction; a 10,000-item batch request always fits


@dataclass
class QueuedEarn:
    """One POST /v1/earn or /v1/earn/batch, waiting for its group to commit."""

    principal: Principal
    key: str
    digest: str
    items: Sequence[EarnItem]
    respond: Callable[[list[int]], Any]  # earn ids -> response body
    future: Future[JSONResponse] = field(default_factory=Future)


class EarnAcceptor:
    """Writes accepted earns to the outbox in groups, from one thread."""

    def __init__(self, runtime: Runtime, ttl_s: int) -> None:
        self.runtime, self.ttl_s = runtime, ttl_s
        self._queue: queue.SimpleQueue[QueuedEarn | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="earn-acceptor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    async def accept(self, request: QueuedEarn) -> JSONResponse:
        """Queue the request and wait for its group's commit: 202 with the ids, a replay, or an error."""
        self._queue.put(request)
        return await asyncio.wrap_future(request.future)

    # ---------------------------------------------------------------------------- the thread
    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            group, items = [first], len(first.items)
            while items < MAX_GROUP_ITEMS:
                try:
                    request = self._queue.get_nowait()
                except queue.Empty:
                    break
                if request is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(request)
                items += len(request.items)
            self._commit(group)

    def _commit(self, group: list[QueuedEarn]) -> None:
        """Write the group in one transaction and answer every request in it."""
        try:
            runtime = self.runtime
            with runtime.sessions() as session, write_lock(session):
                uow = UnitOfWork.of(runtime, session)
                outcomes = self._write(uow, group, utcnow() - timedelta(seconds=self.ttl_s))
                session.commit()
        except Exception as exc:
            log.exception("earn group of %d requests failed", len(group))
            for request in group:
                request.future.set_exception(exc)
            return
        for request, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)

    @staticmethod
    def _write(uow: UnitOfWork, group: list[QueuedEarn], forgotten: datetime) -> list[JSONResponse | DomainError]:
        """Each request's response: a replay of an earlier one with the same key, or its accepted
        earns, or why they were refused. A key sent twice within the group is answered as its
        first request is; a key last used before `forgotten` is new again."""
        session = uow.session
        keys = {(request.principal.key_id, request.key) for request in group}
        records = {
            (record.principal, record.key): record
            for record in session.scalars(
                select(IdempotencyRecord).where(tuple_(IdempotencyRecord.principal, IdempotencyRecord.key).in_(keys))
            )
        }
        for stale in [k for k, record in records.items() if record.created_at < forgotten]:
            session.delete(records.pop(stale))
        session.flush()
        outcomes: list[JSONResponse | DomainError | None] = [None] * len(group)
        first: dict[tuple[str, str], int] = {}  # key -> the request that writes for it
        for i, request in enumerate(group):
            key = (request.principal.key_id, request.key)
            if key in records:
                outcomes[i] = _replay(records[key], request.digest)
            elif key not in first:
                first[key] = i
        fresh = list(first.values())
        accepted = earning.accept(uow, [EarnRequest(group[i].principal.partner_id or 0, group[i].items) for i in fresh])
        answers = [
            (i, Answer(group[i].principal, group[i].key, group[i].digest, 202, group[i].respond(ids)))
            for i, ids in zip(fresh, accepted, strict=True)
            if not isinstance(ids, DomainError)
        ]
        for (i, _), response in zip(answers, remember(session, [a for _, a in answers]), strict=True):
            outcomes[i] = response
        for i, ids in zip(fresh, accepted, strict=True):
            if isinstance(ids, DomainError):
                outcomes[i] = ids
        answered: list[JSONResponse | DomainError] = []
        for i, request in enumerate(group):
            outcome = outcomes[i]
            if outcome is None:  # the same key as an earlier request in this group
                j = first[(request.principal.key_id, request.key)]
                outcome = answered[j]
                if request.digest != group[j].digest:
                    detail = f"Idempotency-Key {request.key!r} was used with a different request"
                    outcome = ConflictError(ErrorCode.IDEMPOTENCY_CONFLICT, detail)
                elif isinstance(outcome, JSONResponse):
                    outcome = JSONResponse(
                        json.loads(bytes(outcome.body)),
                        status_code=outcome.status_code,
                        headers={"Idempotent-Replay": "true"},
                    )
            answered.append(outcome)
        return answered


def _replay(record: IdempotencyRecord, digest: str) -> JSONResponse | DomainError:
    try:
        return replay(record, digest)
    except DomainError as exc:
        return exc
