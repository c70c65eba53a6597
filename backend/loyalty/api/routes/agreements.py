"""Rate agreements between brands for the exchange: proposed by one, counter-signed by the
other, registered on the chain by the outbox; either may revoke."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import CatalogReader, Partnered, Reader, RuntimeDep, UowDep
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    AgreementCreate,
    AgreementPublic,
    AgreementSign,
    CursorQuery,
    IdPath,
    Limit,
    Page,
)
from loyalty.db.models import AgreementStatus, RateAgreement, utcnow
from loyalty.db.session import write_lock
from loyalty.domain.consent import for_wallets
from loyalty.services import agreements
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])


def _public(uow: UnitOfWork, row: RateAgreement) -> AgreementPublic:
    return AgreementPublic(
        typed_data=for_wallets(agreements.typed_data(uow, row)),
        id=row.id, agreement_id=row.agreement_id, exchange_address=row.exchange_address, status=AgreementStatus(row.status),
        source_program_id=row.source_program_id, target_program_id=row.target_program_id, payer_id=row.payer_id,
        payee_id=row.payee_id, proposed_by=row.proposed_by, terms=json.loads(row.terms),
        signed_by_payer=row.payer_signature is not None, signed_by_payee=row.payee_signature is not None,
        revoked_by=row.revoked_by, error=row.error, created_at=row.created_at,
    )  # fmt: skip


@router.post("", status_code=201, response_model=AgreementPublic)
def propose_agreement(
    body: AgreementCreate, request: Request, uow: UowDep, runtime: RuntimeDep, principal: Partnered, digest: Digest
) -> JSONResponse:
    """Propose terms to another brand, signed for the calling partner (the payer or the payee).
    Terms the exchange would refuse are `422 agreement_invalid`."""
    assert principal.partner_id is not None
    partner_id = principal.partner_id
    fields = body.model_dump()
    fields["valid_from"] = body.valid_from or utcnow()

    def write() -> tuple[int, AgreementPublic]:
        return 201, _public(uow, agreements.propose(uow, runtime.exchange(), partner_id, fields))

    return idempotent(request, digest, uow.session, principal, write)


@router.get("", response_model=Page[AgreementPublic])
def list_agreements(
    uow: UowDep, principal: CatalogReader, limit: Limit = 100, cursor: CursorQuery = None
) -> Page[AgreementPublic]:
    """Agreements, oldest first: a partner sees those it is a party to; a member the registered
    ones (what it may exchange under: their terms are public on the chain)."""
    registered = principal.role == "member"
    page = agreements.page(uow, principal.partner_id, cursor=cursor, limit=limit, registered_only=registered)
    return Page(data=[_public(uow, r) for r in page.rows], next_cursor=page.next_cursor)


@router.get("/{agreement_id}", response_model=AgreementPublic)
def get_agreement(agreement_id: IdPath, uow: UowDep, principal: Reader) -> AgreementPublic:
    return _public(uow, agreements.get(uow, agreement_id, principal.partner_id))


@router.post("/{agreement_id}/sign", response_model=AgreementPublic)
def sign_agreement(
    agreement_id: IdPath, uow: UowDep, runtime: RuntimeDep, principal: Partnered, body: AgreementSign | None = None
) -> AgreementPublic:
    """Counter-sign (naturally idempotent): signed by both, the outbox registers it on the
    exchange (`signed`, then `registered`, or `refused` with the chain's reason). A brand with
    its own agreement signer sends that signer's `signature` of the agreement's `typed_data`
    (its proposals wait for it too)."""
    assert principal.partner_id is not None
    signature = bytes.fromhex(body.signature[2:]) if body is not None and body.signature else None
    with write_lock(uow.session):
        row = agreements.sign(uow, runtime.exchange(), agreement_id, principal.partner_id, signature)
        uow.session.commit()
        return _public(uow, row)


@router.post("/{agreement_id}/revoke", response_model=AgreementPublic)
def revoke_agreement(agreement_id: IdPath, uow: UowDep, principal: Partnered) -> AgreementPublic:
    """Stop the agreement for future exchanges (naturally idempotent): at once before it is
    registered; after, through the outbox (`revoking`, then `revoked`)."""
    assert principal.partner_id is not None
    with write_lock(uow.session):
        row = agreements.revoke(uow, agreement_id, principal.partner_id)
        uow.session.commit()
        return _public(uow, row)
