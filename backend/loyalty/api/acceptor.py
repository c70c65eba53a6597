"""Group commit: every earn and purchase, and every other write routed here (refunds, events),
is written by one thread, many requests to a transaction.

Hundreds of small write transactions a second, each from its own request thread, queue on the
database's write lock (SQLite has one writer; PostgreSQL serializes on the partner row that holds
the budget). One thread that commits whatever has queued meanwhile pays for one commit per group
instead, and no request waits behind another's lock back-off.

The group's earn requests are checked together (one query for replayed keys, one for members,
one for budgets) and written together (one UPDATE per partner's budget, one INSERT of earns, one
of idempotency records); so are its purchases (`purchases.record_many`). Every other write runs
in a savepoint of its own, after them: a refused one (or one that fails) rolls back only its own
changes and does not hold up the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from loyalty.api.deps import Principal
from loyalty.api.idempotency import Answer, idempotency_key, remember, replay
from loyalty.db.models import IdempotencyRecord, utcnow
from loyalty.db.session import begin_writing, pairs_in, write_lock
from loyalty.domain.earning import EarnItem, EarnRequest
from loyalty.errors import ConflictError, DomainError, ErrorCode
from loyalty.runtime import Runtime
from loyalty.services import awards, earning, partners, purchases
from loyalty.services.uow import UnitOfWork

log = logging.getLogger("loyalty.acceptor")
MAX_GROUP_ITEMS = 20_000  # earns per transaction; a 10,000-item batch request always fits
GATHER_S = 0.002  # how long a group waits for more requests, at most
GATHER_UNTIL = 64  # requests: a group this large goes at once


@dataclass
class QueuedEarn:
    """One POST /v1/earn or /v1/earn/batch, waiting for its group to commit."""

    principal: Principal
    key: str
    digest: str
    items: Sequence[EarnItem]
    respond: Callable[[list[int]], Any]  # earn ids -> response body
    program_id: int | None = None  # None: the first program (the partner's own account)
    future: Future[JSONResponse] = field(default_factory=Future)
    account_id: int | None = None  # the partner's issuer account in `program_id`, once looked up

    @property
    def request(self) -> EarnRequest:
        return EarnRequest(self.principal.partner_id or 0, self.items, self.account_id)


@dataclass
class QueuedWrite:
    """Another POST (a purchase, a refund, an event), waiting for its group to commit: `run`
    does its write in the group's unit of work and answers its status and body."""

    principal: Principal
    key: str
    digest: str
    run: Callable[[UnitOfWork], tuple[int, Any]]
    future: Future[JSONResponse] = field(default_factory=Future)

    @property
    def items(self) -> Sequence[object]:
        return (self,)  # one write: counts as one item towards the group's size


@dataclass
class QueuedPurchase:
    """One POST /v1/purchases, waiting for its group: the group's orders are recorded together
    (`purchases.record_many`)."""

    principal: Principal
    key: str
    digest: str
    order: purchases.Order
    respond: Callable[[purchases.Recorded], Any]  # the purchase recorded -> response body
    future: Future[JSONResponse] = field(default_factory=Future)

    @property
    def items(self) -> Sequence[object]:
        return (self,)


Queued = QueuedEarn | QueuedPurchase | QueuedWrite


class Acceptor:
    """Writes accepted earns and other writes in groups, from one thread."""

    def __init__(self, runtime: Runtime, ttl_s: int) -> None:
        self.runtime, self.ttl_s = runtime, ttl_s
        self._queue: queue.SimpleQueue[Queued | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="earn-acceptor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    async def accept(self, request: Queued) -> JSONResponse:
        """Queue the request and wait for its group's commit: its answer, a replay, or an error."""
        self._queue.put(request)
        return await asyncio.wrap_future(request.future)

    # ---------------------------------------------------------------------------- the thread
    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            group, items = [first], len(first.items)
            gather_until = time.monotonic() + GATHER_S
            while items < MAX_GROUP_ITEMS:
                try:
                    # A small group waits a moment for the requests still being read: under
                    # load they come in a burst, and a group costs a transaction whatever its size.
                    wait = gather_until - time.monotonic() if len(group) < GATHER_UNTIL else 0
                    request = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if request is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(request)
                items += len(request.items)
            self._commit(group)

    def _commit(self, group: list[Queued]) -> None:
        """Write the group in one transaction and answer every request in it."""
        try:
            runtime = self.runtime
            with runtime.sessions() as session, write_lock(session):
                begin_writing(session)  # the writes' savepoints are nested in the group's transaction
                uow = UnitOfWork.of(runtime, session)
                outcomes = self._write(uow, group, utcnow() - timedelta(seconds=self.ttl_s))
                session.commit()
        except Exception as exc:
            log.exception("earn group of %d requests failed", len(group))
            for request in group:
                request.future.set_exception(exc)
            return
        for request, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, Exception):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)

    @staticmethod
    def _write(uow: UnitOfWork, group: list[Queued], forgotten: datetime) -> list[JSONResponse | Exception]:
        """Each request's response: a replay of an earlier one with the same key, or its accepted
        earns (or other write's answer), or why it was refused. A key sent twice within the
        group is answered as its first request is; a key last used before `forgotten` is new
        again."""
        session = uow.session
        keys = {(request.principal.key_id, request.key) for request in group}
        records = {
            (record.principal, record.key): record
            for record in session.scalars(
                select(IdempotencyRecord).where(pairs_in(IdempotencyRecord.principal, IdempotencyRecord.key, keys))
            )
        }
        for stale in [k for k, record in records.items() if record.created_at < forgotten]:
            session.delete(records.pop(stale))
        session.flush()
        outcomes: list[JSONResponse | Exception | None] = [None] * len(group)
        first: dict[tuple[str, str], int] = {}  # key -> the request that writes for it
        for i, request in enumerate(group):
            key = (request.principal.key_id, request.key)
            if key in records:
                outcomes[i] = _replay(records[key], request.digest)
            elif key not in first:
                first[key] = i
        # Every partner account the group may touch, locked first and in order (PostgreSQL):
        # earns, purchases, refunds and events each lock some, and in two groups' orders they
        # could deadlock.
        awards.lock_accounts(session, {group[i].principal.partner_id or 0 for i in first.values()})
        fresh = [i for i in first.values() if isinstance(group[i], QueuedEarn)]
        fresh = _in_programs(uow, group, fresh, outcomes)
        earns = [cast(QueuedEarn, group[i]) for i in fresh]
        accepted = earning.accept(uow, [e.request for e in earns])
        answers = [
            (i, Answer(e.principal, e.key, e.digest, 202, e.respond(ids)))
            for i, e, ids in zip(fresh, earns, accepted, strict=True)
            if not isinstance(ids, DomainError)
        ]
        for i, ids in zip(fresh, accepted, strict=True):
            if isinstance(ids, DomainError):
                outcomes[i] = ids
        bought = [i for i in first.values() if isinstance(group[i], QueuedPurchase)]
        if bought:
            orders = [cast(QueuedPurchase, group[i]) for i in bought]
            for i, order, recorded in zip(bought, orders, _record(uow, [o.order for o in orders]), strict=True):
                if isinstance(recorded, Exception):
                    outcomes[i] = recorded
                else:
                    answers.append((i, Answer(order.principal, order.key, order.digest, 202, order.respond(recorded))))
        for i in first.values():
            if isinstance(write := group[i], QueuedWrite):
                answer = _run(uow, write)
                if isinstance(answer, Exception):
                    outcomes[i] = answer
                else:
                    answers.append((i, answer))
        for (i, _), response in zip(answers, remember(session, [a for _, a in answers]), strict=True):
            outcomes[i] = response
        answered: list[JSONResponse | Exception] = []
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


async def grouped(
    request: Request, principal: Principal, digest: str, run: Callable[[UnitOfWork], tuple[int, Any]]
) -> JSONResponse:
    """Answer a POST by a write the acceptor runs in its next group (`QueuedWrite`)."""
    acceptor: Acceptor = request.app.state.acceptor
    return await acceptor.accept(QueuedWrite(principal, idempotency_key(request), digest, run))


def _in_programs(
    uow: UnitOfWork, group: list[Queued], fresh: list[int], outcomes: list[JSONResponse | Exception | None]
) -> list[int]:
    """The earns among `fresh` that may go on: each in a program other than the first gets the
    partner's issuer account there (one read for the group); one whose partner has none is
    refused (`422 program_not_joined`)."""
    earns = {i: cast(QueuedEarn, group[i]) for i in fresh}
    asked = {(e.principal.partner_id or 0, e.program_id) for e in earns.values() if e.program_id is not None}
    accounts = partners.accounts_in(uow, asked)
    going = []
    for i, earn in earns.items():
        if earn.program_id is not None:
            brand_id = earn.principal.partner_id or 0
            if (account_id := accounts.get((brand_id, earn.program_id))) is None:
                outcomes[i] = partners.not_joined(brand_id, earn.program_id)
                continue
            earn.account_id = account_id
        going.append(i)
    return going


def _record(uow: UnitOfWork, orders: list[purchases.Order]) -> list[purchases.Recorded | Exception]:
    """The group's orders recorded together, in a savepoint; if that fails for a reason no
    order was refused for (a bug, a row the database will not take), each again alone, so only
    the order at fault fails."""
    try:
        with uow.session.begin_nested():
            return list(purchases.record_many(uow, orders))
    except Exception:
        log.exception("a group of %d purchases failed: recording them one by one", len(orders))
    alone: list[purchases.Recorded | Exception] = []
    for order in orders:
        try:
            with uow.session.begin_nested():
                alone.append(purchases.record_many(uow, [order])[0])
        except Exception as exc:
            log.exception("purchase %r of partner %s failed", order.order_id, order.partner_id)
            alone.append(exc)
    return alone


def _run(uow: UnitOfWork, job: QueuedWrite) -> Answer | Exception:
    """One write, in a savepoint: its answer, or why it was refused (or failed), with nothing
    of it written. A unique name another process took meanwhile is tried once more, so it is
    answered as a conflict (`order_exists`, say) now that it shows."""
    for attempt in range(2):
        try:
            with uow.session.begin_nested():
                status, body = job.run(uow)
            return Answer(job.principal, job.key, job.digest, status, body)
        except IntegrityError as exc:
            if attempt:
                return exc
        except DomainError as exc:
            return exc
        except Exception as exc:  # a bug in one write must not fail the others: log it, answer 500
            log.exception("write %s %r failed", job.principal.key_id, job.key)
            return exc
    raise AssertionError("unreachable")


def _replay(record: IdempotencyRecord, digest: str) -> JSONResponse | DomainError:
    try:
        return replay(record, digest)
    except DomainError as exc:
        return exc
