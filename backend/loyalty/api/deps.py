"""Dependencies shared by the routes, as `Annotated` aliases; tests swap them with
`app.dependency_overrides`."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from loyalty.db.models import Auditor, Partner
from loyalty.errors import DomainError, ForbiddenError
from loyalty.program import Program, hash_api_key

Role = Literal["admin", "partner", "auditor"]


class UnauthorizedError(DomainError):
    status = 401


@dataclass(frozen=True)
class Principal:
    """Who is calling.

    Attributes:
        role: admin, partner or auditor.
        key_id: a stable id for idempotency records (never the key itself).
        partner_id: the partner, for a partner key.
    """

    role: Role
    key_id: str
    partner_id: int | None = None


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_program(request: Request, session: SessionDep) -> Program:
    return Program(session=session, chain=request.app.state.chain, custody=request.app.state.custody)


ProgramDep = Annotated[Program, Depends(get_program)]


bearer = HTTPBearer(auto_error=False, description="an API key: the admin's, a partner's or an auditor's")


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    """The caller, from its bearer key; known keys are answered from memory, in the event loop."""
    if credentials is None:
        raise UnauthorizedError("unauthorized", "send `Authorization: Bearer <api key>`")
    key = credentials.credentials.strip()
    if hmac.compare_digest(key, request.app.state.settings.admin_api_key):
        return Principal("admin", "admin")
    key_hash = hash_api_key(key)
    known: dict[str, Principal] = request.app.state.principals  # keys are never revoked in v1
    if (principal := known.get(key_hash)) is None:
        principal = await run_in_threadpool(_look_up, request.app.state.sessions, key_hash)
        known[key_hash] = principal
    return principal


def _look_up(sessions: sessionmaker[Session], key_hash: str) -> Principal:
    with sessions() as session:
        if (partner_id := session.scalar(select(Partner.id).where(Partner.api_key_hash == key_hash))) is not None:
            return Principal("partner", f"partner:{partner_id}", partner_id)
        if (auditor_id := session.scalar(select(Auditor.id).where(Auditor.api_key_hash == key_hash))) is not None:
            return Principal("auditor", f"auditor:{auditor_id}")
    raise UnauthorizedError("unauthorized", "unknown API key")


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*roles: Role):  # type: ignore[no-untyped-def]
    """A dependency that lets only `roles` through."""

    async def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise ForbiddenError("forbidden", f"this needs the {' or '.join(roles)} role, not {principal.role}")
        return principal

    return Depends(check)


Admin = Annotated[Principal, require("admin")]
Writer = Annotated[Principal, require("admin", "partner")]
Partnered = Annotated[Principal, require("partner")]
Reader = Annotated[Principal, require("admin", "partner", "auditor")]
