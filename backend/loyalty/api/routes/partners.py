"""Partners (brands with an issuer account) and auditors: created by the admin."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Admin, Overseer, Principal, Reader, UowDep, Writer, forget_keys
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    AuditorCreate,
    AuditorCreated,
    AuditorPublic,
    BudgetGrant,
    CursorQuery,
    IdPath,
    KeyRotated,
    Limit,
    Page,
    PartnerBudget,
    PartnerCreate,
    PartnerCreated,
    PartnerPublic,
    PartnerStatus,
)
from loyalty.db.models import Partner, PartnerKind
from loyalty.errors import ErrorCode, NotFoundError
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
    if partner.deactivated_at is not None:
        status = PartnerStatus.DEACTIVATED
    else:
        status = PartnerStatus.PROVISIONING if partner.provisioned_at is None else PartnerStatus.ACTIVE
    return PartnerPublic(
        id=partner.id,
        name=partner.name,
        kind=PartnerKind(partner.kind),
        owner_id=partner.owner_id,
        issuer_address=partner.issuer_address,
        status=status,
        created_at=partner.created_at,
    )


def _own(uow: UowDep, principal: Principal, partner_id: int) -> Partner:
    """The partner, for the admin, an auditor or the partner itself (to others, as if absent)."""
    if principal.partner_id is not None and principal.partner_id != partner_id:
        raise NotFoundError(ErrorCode.PARTNER_NOT_FOUND, f"no partner {partner_id}")
    return partners.get(uow, partner_id)


@router.get("/partners/{partner_id}", response_model=PartnerPublic)
def get_partner(partner_id: IdPath, uow: UowDep, principal: Reader) -> PartnerPublic:
    return partner_public(_own(uow, principal, partner_id))


@router.get("/partners/{partner_id}/budget", response_model=PartnerBudget)
def get_budget(partner_id: IdPath, uow: UowDep, principal: Reader) -> PartnerBudget:
    """The partner's issue budget: granted, left on-chain (read now), used, pending, available."""
    return PartnerBudget(**partners.budget(uow, _own(uow, principal, partner_id)))


@router.post("/partners/{partner_id}/budget/grants", status_code=201, response_model=PartnerBudget)
def grant_budget(
    partner_id: IdPath, body: BudgetGrant, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Grant a partner more budget (admin). It goes on-chain through the outbox writer as an
    operator write setting the partner's on-chain budget to what is left plus the grant; the
    partner's earn batches wait until it is final (`to_grant_points` shows it on its way)."""

    def write() -> tuple[int, PartnerBudget]:
        partner = partners.grant_budget(uow, partner_id, body.amount_points)
        return 201, PartnerBudget(**partners.budget(uow, partner))

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/partners/{partner_id}/key-rotations", status_code=201, response_model=KeyRotated)
def rotate_partner_key(
    partner_id: IdPath, request: Request, uow: UowDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """A new API key for the partner (the admin, or the partner itself); the old key is refused
    at once here and within 10 seconds on every other API process."""

    def write() -> tuple[int, KeyRotated]:
        _own(uow, principal, partner_id)
        partner, api_key = partners.rotate_key(uow, partner_id)
        return 201, KeyRotated(id=partner.id, api_key=api_key)

    response = idempotent(request, digest, uow.session, principal, write, secret=True)
    forget_keys(request)
    return response


@router.post("/partners/{partner_id}/deactivate", response_model=PartnerPublic)
def deactivate_partner(
    partner_id: IdPath, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Deactivate a partner: its key is refused (`403 partner_deactivated`) and its rewards leave
    the catalog; the earns and redemptions it had accepted still go on-chain."""

    def write() -> tuple[int, PartnerPublic]:
        return 200, partner_public(partners.deactivate(uow, partner_id))

    response = idempotent(request, digest, uow.session, principal, write)
    forget_keys(request)
    return response


@router.post("/auditors/{auditor_id}/key-rotations", status_code=201, response_model=KeyRotated)
def rotate_auditor_key(
    auditor_id: IdPath, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """A new API key for an auditor; the old one is refused."""

    def write() -> tuple[int, KeyRotated]:
        auditor, api_key = partners.rotate_auditor_key(uow, auditor_id)
        return 201, KeyRotated(id=auditor.id, api_key=api_key)

    response = idempotent(request, digest, uow.session, principal, write, secret=True)
    forget_keys(request)
    return response


@router.get("/partners", response_model=Page[PartnerPublic])
def list_partners(
    uow: UowDep, _: Overseer, kind: PartnerKind | None = None, limit: Limit = 100, cursor: CursorQuery = None
) -> Page[PartnerPublic]:
    """Every partner, oldest first: brands, and the issuer accounts of their campaigns
    (`kind=brand` lists brands only)."""
    page = partners.list_partners(uow, cursor, limit, kind)
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
