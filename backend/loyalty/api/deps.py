"""Dependencies shared by the routes, as `Annotated` aliases; tests swap them with
`app.dependency_overrides`."""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Literal

import anyio
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from loyalty.db.models import Auditor, Partner
from loyalty.domain.credentials import hash_secret
from loyalty.errors import ErrorCode, ForbiddenError, UnauthorizedError
from loyalty.runtime import Runtime
from loyalty.services import credentials
from loyalty.services.uow import UnitOfWork

KEY_CACHE_S = 10.0  # how long a process trusts a key it looked up: a revoked key stops within this
Role = Literal["admin", "partner", "auditor", "member"]
ROLES: tuple[Role, ...] = ("admin", "partner", "auditor", "member")


@dataclass(frozen=True)
class Principal:
    """Who is calling.

    Attributes:
        role: admin, partner, auditor or member.
        key_id: a stable id for idempotency records (never the key itself).
        partner_id: the partner, for a partner key.
        member_id: the member, for a member's session.
    """

    role: Role
    key_id: str
    partner_id: int | None = None
    member_id: int | None = None


async def get_runtime(request: Request) -> Runtime:
    """In the event loop: a sync dependency would cost every request a hop to a worker thread."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_uow(runtime: RuntimeDep) -> AsyncIterator[UnitOfWork]:
    """A session opened in the event loop (that connects to nothing yet) and closed in a worker
    thread (closing rolls back and returns the connection: I/O on PostgreSQL): one hop to a
    worker thread per request instead of two for a sync generator's enter and exit.

    The close does not wait for room in the thread pool (a limiter of its own, as FastAPI's
    own exits): a session holding a row lock would otherwise wait behind the requests blocked
    on that lock, which fill the pool, until the lock timed out. A client gone away still
    gives the connection back (shielded)."""
    session = runtime.sessions()
    try:
        yield UnitOfWork.of(runtime, session)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))


UowDep = Annotated[UnitOfWork, Depends(get_uow)]


bearer = HTTPBearer(
    auto_error=False,
    description="an API key (the admin's, a partner's or an auditor's), or a member's session token (`mbr_...`)",
)


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller, from its bearer key; known keys are answered from memory, in the event loop."""
    if credentials is None:
        raise UnauthorizedError(ErrorCode.UNAUTHORIZED, "send `Authorization: Bearer <api key>`")
    key = credentials.credentials.strip()
    if hmac.compare_digest(key.encode(), request.app.state.settings.admin_api_key.encode()):
        return Principal("admin", "admin")
    if key.startswith("mbr_"):  # sessions expire and end: looked up every time
        return await run_in_threadpool(_member_session, request.app.state.runtime, key)
    key_hash = hash_secret(key)
    known: dict[str, tuple[Principal, float]] = request.app.state.principals
    now = time.monotonic()
    if (cached := known.get(key_hash)) is None or cached[1] < now:
        generation = request.app.state.keys_generation
        principal = await run_in_threadpool(_look_up, request.app.state.runtime.sessions, key_hash)
        cached = (principal, now + KEY_CACHE_S)
        if request.app.state.keys_generation == generation:  # no rotation meanwhile: safe to keep
            known[key_hash] = cached
    return cached[0]


def forget_keys(request: Request) -> None:
    """A key was rotated or a partner deactivated: this process asks the database again at once
    (other API processes within `KEY_CACHE_S`); a lookup already under way is not kept."""
    request.app.state.keys_generation += 1
    request.app.state.principals.clear()


def _look_up(sessions: sessionmaker[Session], key_hash: str) -> Principal:
    with sessions() as session:
        partner = session.execute(
            select(Partner.id, Partner.deactivated_at).where(Partner.api_key_hash == key_hash)
        ).first()
        if partner is not None:
            if partner.deactivated_at is not None:
                raise ForbiddenError(ErrorCode.PARTNER_DEACTIVATED, f"partner {partner.id} is deactivated")
            return Principal("partner", f"partner:{partner.id}", partner.id)
        if (auditor_id := session.scalar(select(Auditor.id).where(Auditor.api_key_hash == key_hash))) is not None:
            return Principal("auditor", f"auditor:{auditor_id}")
    raise UnauthorizedError(ErrorCode.UNAUTHORIZED, "unknown API key")


def _member_session(runtime: Runtime, token: str) -> Principal:
    with runtime.sessions() as session:
        uow = UnitOfWork.of(runtime, session)
        member = credentials.member_of_session(uow, token)
    if member is None:
        raise UnauthorizedError(ErrorCode.UNAUTHORIZED, "the session is unknown, ended or expired: sign in again")
    return Principal("member", f"member:{member.id}", member_id=member.id)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*roles: Role):  # type: ignore[no-untyped-def]
    """A dependency that lets only `roles` through. The roles are published in the OpenAPI
    document as each operation's `x-roles` (the authorization matrix test reads them)."""

    async def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise ForbiddenError(ErrorCode.FORBIDDEN, f"this needs the {' or '.join(roles)} role, not {principal.role}")
        return principal

    check.roles = roles  # type: ignore[attr-defined]
    return Depends(check)


def roles_of(route: APIRoute) -> list[str]:
    """Who may call `route`: the roles its `require` dependency lets through, or `anyone`."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if (roles := getattr(dependant.call, "roles", None)) is not None:
            return list(roles)
        pending += dependant.dependencies
    return ["anyone"]


Admin = Annotated[Principal, require("admin")]
Writer = Annotated[Principal, require("admin", "partner")]
Partnered = Annotated[Principal, require("partner")]
Reader = Annotated[Principal, require("admin", "partner", "auditor")]
Overseer = Annotated[Principal, require("admin", "auditor")]
CatalogReader = Annotated[Principal, require("admin", "partner", "auditor", "member")]
Signed = Annotated[Principal, require("member")]
