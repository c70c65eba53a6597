"""Dependencies shared by the routes, as `Annotated` aliases; tests swap them with
`app.dependency_overrides`."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Header, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

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
        partner: the partner, for a partner key.
    """

    role: Role
    key_id: str
    partner: Partner | None = None


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_program(request: Request, session: SessionDep) -> Program:
    return Program(session=session, chain=request.app.state.chain, custody=request.app.state.custody)


ProgramDep = Annotated[Program, Depends(get_program)]


def get_principal(
    request: Request, session: SessionDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    if not authorization or not authorization.startswith("Bearer "):
        raise UnauthorizedError("unauthorized", "send `Authorization: Bearer <api key>`")
    key = authorization.removeprefix("Bearer ").strip()
    if hmac.compare_digest(key, request.app.state.settings.admin_api_key):
        return Principal("admin", "admin")
    key_hash = hash_api_key(key)
    if (partner := session.scalar(select(Partner).where(Partner.api_key_hash == key_hash))) is not None:
        return Principal("partner", f"partner:{partner.id}", partner)
    if (auditor := session.scalar(select(Auditor).where(Auditor.api_key_hash == key_hash))) is not None:
        return Principal("auditor", f"auditor:{auditor.id}")
    raise UnauthorizedError("unauthorized", "unknown API key")


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*roles: Role):  # type: ignore[no-untyped-def]
    """A dependency that lets only `roles` through."""

    def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise ForbiddenError("forbidden", f"this needs the {' or '.join(roles)} role, not {principal.role}")
        return principal

    return Depends(check)


Admin = Annotated[Principal, require("admin")]
Writer = Annotated[Principal, require("admin", "partner")]
Partnered = Annotated[Principal, require("partner")]
Reader = Annotated[Principal, require("admin", "partner", "auditor")]
