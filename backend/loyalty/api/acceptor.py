"""Group commit for earns: every earn request the API accepts is written by one thread, many
requests to a transaction.

Hundreds of small write transactions a second, each from its own request thread, queue on the
database's write lock (SQLite has one writer; PostgreSQL serializes on the partner row that holds
the budget). One thread that commits whatever has queued meanwhile pays for one commit per group
instead, and no request waits behind another's lock back-off.

Each request in a group either fails before it writes anything (a replayed or conflicting key,
an unknown member, a budget exceeded: all checked before the one conditional UPDATE that
reserves budget) or writes its earns and its idempotency record. So a refused request needs no
rollback, and the group commits as one.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from loyalty.api.deps import Principal
from loyalty.api.idempotency import remember, replay_of
from loyalty.chain import Chain
from loyalty.custody import Custody
from loyalty.db.session import write_lock
from loyalty.errors import DomainError
from loyalty.program import Program

log = logging.getLogger("loyalty.acceptor")
MAX_GROUP_ITEMS = 20_000  # earns per transaction; a 10,000-item batch request always fits


@dataclass
class EarnRequest:
    """One POST /v1/earn or /v1/earn/batch, waiting for its group to commit."""

    principal: Principal
    key: str
    digest: str
    items: Sequence[tuple[int, int, str]]
    respond: Callable[[list[int]], Any]  # earn ids -> response body
    future: Future[JSONResponse] = field(default_factory=Future)


class EarnAcceptor:
    """Writes accepted earns to the outbox in groups, from one thread."""

    def __init__(self, sessions: sessionmaker[Session], chain: Chain, custody: Custody) -> None:
        self.sessions, self.chain, self.custody = sessions, chain, custody
        self._queue: queue.SimpleQueue[EarnRequest | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="earn-acceptor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    async def accept(self, request: EarnRequest) -> JSONResponse:
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

    def _commit(self, group: list[EarnRequest]) -> None:
        """Write the group in one transaction. An unexpected error fails its own request only: the
        transaction is rolled back and the rest of the group is written again without it."""
        while group:
            outcomes: list[JSONResponse | DomainError] = []
            with self.sessions() as session, write_lock(session):
                program = Program(session=session, chain=self.chain, custody=self.custody)
                try:
                    for request in group:
                        try:
                            outcomes.append(self._write(session, program, request))
                        except DomainError as exc:
                            outcomes.append(exc)
                except Exception as exc:
                    session.rollback()
                    log.exception("earn request failed")
                    group[len(outcomes)].future.set_exception(exc)
                    del group[len(outcomes)]
                    continue
                try:
                    session.commit()
                except Exception as exc:
                    log.exception("earn group commit failed")
                    for request in group:
                        request.future.set_exception(exc)
                    return
            for request, outcome in zip(group, outcomes, strict=True):
                if isinstance(outcome, DomainError):
                    request.future.set_exception(outcome)
                else:
                    request.future.set_result(outcome)
            return

    @staticmethod
    def _write(session: Session, program: Program, request: EarnRequest) -> JSONResponse:
        if (replay := replay_of(session, request.principal, request.key, request.digest)) is not None:
            return replay
        assert request.principal.partner_id is not None
        ids = program.accept_earns(request.principal.partner_id, request.items)
        return remember(session, request.principal, request.key, request.digest, 202, request.respond(ids))
