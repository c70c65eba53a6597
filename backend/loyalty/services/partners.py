"""Partners (brands with an issuer account) and auditors: created by the admin."""

from __future__ import annotations

from sqlalchemy import select

from loyalty.db.models import Auditor, Partner
from loyalty.domain.credentials import hash_secret, new_secret
from loyalty.errors import ConflictError, ErrorCode, NotFoundError
from loyalty.services.lists import Page, keyset
from loyalty.services.uow import UnitOfWork


def create(uow: UnitOfWork, name: str, issue_budget_points: int) -> tuple[Partner, str]:
    """A partner with its own issuer account; returns its API key. Nothing goes to the chain
    here: the outbox writer gives the account gas, ISSUER_ROLE and the budget, and the
    partner's earns wait for that (they are accepted at once)."""
    if uow.session.scalar(select(Partner).where(Partner.name == name)) is not None:
        raise ConflictError(ErrorCode.PARTNER_EXISTS, f"a partner named {name!r} already exists")
    address, sealed = uow.custody.new_wallet()
    api_key = new_secret("ptn_")
    partner = Partner(
        name=name,
        api_key_hash=hash_secret(api_key),
        issuer_address=address,
        issuer_key_sealed=sealed,
        issue_budget_points=issue_budget_points,
        budget_points=issue_budget_points,
        pending_points=0,
    )
    uow.session.add(partner)
    uow.session.flush()
    return partner, api_key


def get(uow: UnitOfWork, partner_id: int) -> Partner:
    partner = uow.session.get(Partner, partner_id)
    if partner is None:
        raise NotFoundError(ErrorCode.PARTNER_NOT_FOUND, f"no partner {partner_id}")
    return partner


def create_auditor(uow: UnitOfWork, name: str) -> tuple[Auditor, str]:
    """Read-only access for an auditor; returns its API key."""
    if uow.session.scalar(select(Auditor).where(Auditor.name == name)) is not None:
        raise ConflictError(ErrorCode.AUDITOR_EXISTS, f"an auditor named {name!r} already exists")
    api_key = new_secret("aud_")
    auditor = Auditor(name=name, api_key_hash=hash_secret(api_key))
    uow.session.add(auditor)
    uow.session.flush()
    return auditor, api_key


def list_partners(uow: UnitOfWork, cursor: str | None, limit: int) -> Page[Partner]:
    return keyset(uow.session, select(Partner), [Partner.id], cursor, limit)


def list_auditors(uow: UnitOfWork, cursor: str | None, limit: int) -> Page[Auditor]:
    return keyset(uow.session, select(Auditor), [Auditor.id], cursor, limit)
