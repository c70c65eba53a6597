"""Partners (brands with an issuer account) and auditors: created by the admin."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Admin, Overseer, UowDep
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    AuditorCreate,
    AuditorCreated,
    AuditorPublic,
    CursorQuery,
    Limit,
    Page,
    PartnerCreate,
    PartnerCreated,
    PartnerPublic,
    PartnerStatus,
)
from loyalty.db.models import Partner
from loyalty.services import partners

router = APIRouter(prefix="/v1", tags=["partners"])


@router.post("/partners", status_code=201, response_model=PartnerCreated)
def create_partner(
    body: PartnerCreate, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Create a partner. Its issuer account gets gas, ISSUER_ROLE and the budget on-chain from the
    outbox writer (`status` says when); its earns are accepted meanwhile and wait for that."""

    def write() -> tuple[int, PartnerCreated]:
        partner, api_key = partners.create(uow, body.name, body.issue_budget_points)
        return 201, PartnerCreated(
            id=partner.id,
            name=partner.name,
            issuer_address=partner.issuer_address,
            status=PartnerStatus.PROVISIONING,
            api_key=api_key,
        )

    return idempotent(request, digest, uow.session, principal, write, secret=True)


def partner_public(partner: Partner) -> PartnerPublic:
    return PartnerPublic(
        id=partner.id,
        name=partner.name,
        issuer_address=partner.issuer_address,
        status=PartnerStatus.PROVISIONING if partner.provisioned_at is None else PartnerStatus.ACTIVE,
        created_at=partner.created_at,
    )


@router.get("/partners", response_model=Page[PartnerPublic])
def list_partners(uow: UowDep, _: Overseer, limit: Limit = 100, cursor: CursorQuery = None) -> Page[PartnerPublic]:
    """Every partner, oldest first."""
    page = partners.list_partners(uow, cursor, limit)
    return Page(data=[partner_public(p) for p in page.rows], next_cursor=page.next_cursor)


@router.get("/auditors", response_model=Page[AuditorPublic])
def list_auditors(uow: UowDep, _: Admin, limit: Limit = 100, cursor: CursorQuery = None) -> Page[AuditorPublic]:
    """Every auditor, oldest first."""
    page = partners.list_auditors(uow, cursor, limit)
    return Page(
        data=[AuditorPublic.model_validate(a, from_attributes=True) for a in page.rows], next_cursor=page.next_cursor
    )


@router.post("/auditors", status_code=201, response_model=AuditorCreated)
def create_auditor(
    body: AuditorCreate, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Create read-only API access for an auditor."""

    def write() -> tuple[int, AuditorCreated]:
        auditor, api_key = partners.create_auditor(uow, body.name)
        return 201, AuditorCreated(id=auditor.id, name=auditor.name, api_key=api_key)

    return idempotent(request, digest, uow.session, principal, write, secret=True)
