"""Partners (brands with an issuer account) and auditors: created by the admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import object_session

from loyalty.api.deps import Admin, Overseer, Partnered, Principal, Reader, RuntimeDep, UowDep, Writer, forget_keys
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    MAX_INT,
    AgreementSignerPublic,
    AgreementSignerSet,
    AuditorCreate,
    AuditorCreated,
    AuditorPublic,
    BudgetGrant,
    CursorQuery,
    DonationRate,
    IdPath,
    KeyRotated,
    Limit,
    Page,
    PartnerBudget,
    PartnerCreate,
    PartnerCreated,
    PartnerProgramCreate,
    PartnerPublic,
    PartnerStatus,
)
from loyalty.chain.client import checksum
from loyalty.db.models import Charity, Partner, PartnerKind
from loyalty.db.session import write_lock
from loyalty.errors import ErrorCode, NotFoundError
from loyalty.runtime import Runtime
from loyalty.services import agreements, donations, partners

router = APIRouter(prefix="/v1", tags=["partners"])


@router.post("/partners", status_code=201, response_model=PartnerCreated)
def create_partner(
    body: PartnerCreate, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Create a partner. Its issuer account gets gas, ISSUER_ROLE and the budget on-chain from the
    outbox writer (`status` says when); its earns are accepted meanwhile and wait for that. A
    `charity` (with its `donation_rate`) has no budget: members donate points to it."""

    def write() -> tuple[int, PartnerCreated]:
        asked = body.donation_rate
        rate = (
            None
            if asked is None
            else partners.DonationRate(cash_minor=asked.cash_minor, points=asked.points, currency=asked.currency)
        )
        partner, api_key = partners.create(uow, body.name, body.issue_budget_points or 0, rate)
        return 201, PartnerCreated(
            id=partner.id,
            name=partner.name,
            issuer_address=partner.issuer_address,
            status=PartnerStatus.PROVISIONING,
            api_key=api_key,
        )

    return idempotent(request, digest, uow.session, principal, write, secret=True)


def partner_public(partner: Partner) -> PartnerPublic:
    session = object_session(partner)
    rate = session.get(Charity, partner.id) if session is not None and partner.kind == PartnerKind.CHARITY else None
    if partner.deactivated_at is not None:
        status = PartnerStatus.DEACTIVATED
    else:
        status = PartnerStatus.PROVISIONING if partner.provisioned_at is None else PartnerStatus.ACTIVE
    return PartnerPublic(
        id=partner.id,
        name=partner.name,
        kind=PartnerKind(partner.kind),
        owner_id=partner.owner_id,
        program_id=partner.program_id,
        issuer_address=partner.issuer_address,
        status=status,
        created_at=partner.created_at,
        donation_rate=None if rate is None else DonationRate.model_validate(rate, from_attributes=True),
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
def get_budget(
    partner_id: IdPath,
    uow: UowDep,
    principal: Reader,
    program_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
) -> PartnerBudget:
    """The partner's issue budget in a program (default: the first): granted, left on-chain
    (read now), used, pending, available."""
    brand = _own(uow, principal, partner_id)
    return PartnerBudget(**partners.budget(uow, partners.account_in(uow, brand.id, program_id)))


@router.post("/partners/{partner_id}/programs", status_code=201, response_model=PartnerPublic)
def join_program(
    partner_id: IdPath, body: PartnerProgramCreate, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Let a brand issue in another program (admin): an issuer account of its own there, with
    its budget, which the outbox provisions as it does the brand's first (`status`). The brand
    then earns there with `program_id` (`/v1/earn`, `/v1/earn/batch`, rewards)."""

    def write() -> tuple[int, PartnerPublic]:
        return 201, partner_public(partners.join(uow, partner_id, body.program_id, body.issue_budget_points))

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/partners/{partner_id}/programs", response_model=Page[PartnerPublic])
def partner_programs(partner_id: IdPath, uow: UowDep, principal: Reader) -> Page[PartnerPublic]:
    """The brand's issuer accounts, one per program it issues in (the first program's is the
    brand's own)."""
    brand = _own(uow, principal, partner_id)
    return Page(data=[partner_public(p) for p in partners.programs_of(uow, brand.id)], next_cursor=None)


@router.post("/partners/{partner_id}/budget/grants", status_code=201, response_model=PartnerBudget)
def grant_budget(
    partner_id: IdPath, body: BudgetGrant, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Grant a partner more budget (admin). It goes on-chain through the outbox writer as an
    operator write setting the partner's on-chain budget to what is left plus the grant; the
    partner's earn batches wait until it is final (`to_grant_points` shows it on its way)."""

    def write() -> tuple[int, PartnerBudget]:
        partner = partners.grant_budget(uow, partner_id, body.amount_points, body.program_id)
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


def _signer(runtime: Runtime, partner: Partner) -> AgreementSignerPublic:
    onchain = runtime.exchange().signer_of(partner.issuer_address) == agreements.signer_of(partner)
    return AgreementSignerPublic(partner_id=partner.id, address=partner.agreement_signer, onchain=onchain)


@router.put("/partners/{partner_id}/donation-rate", response_model=DonationRate)
def set_donation_rate(partner_id: IdPath, body: DonationRate, uow: UowDep, principal: Writer) -> DonationRate:
    """Publish a charity's new rate (the admin, or the charity itself; PUT is naturally
    idempotent): later donations are worth it, earlier ones keep the rate of their day."""
    with write_lock(uow.session):
        _own(uow, principal, partner_id)
        rate = donations.set_rate(uow, partner_id, body.cash_minor, body.points, body.currency)
        uow.session.commit()
    return DonationRate.model_validate(rate, from_attributes=True)


@router.get("/partners/{partner_id}/agreement-signer", response_model=AgreementSignerPublic)
def get_agreement_signer(
    partner_id: IdPath, uow: UowDep, runtime: RuntimeDep, principal: Reader
) -> AgreementSignerPublic:
    """Who signs the brand's rate agreements, and whether the exchange takes it yet."""
    return _signer(runtime, _own(uow, principal, partner_id))


@router.put("/partners/{partner_id}/agreement-signer", response_model=AgreementSignerPublic)
def set_agreement_signer(
    partner_id: IdPath, body: AgreementSignerSet, uow: UowDep, runtime: RuntimeDep, principal: Partnered
) -> AgreementSignerPublic:
    """The brand (only itself) signs its agreements with an address of its own from now on,
    instead of its issuer account, whose key the service holds (null: the issuer account
    again). Naturally idempotent. The outbox sets it on the exchange from the brand's account
    (`onchain` says when); meanwhile agreements that need the brand's signature wait to be
    registered, and its signatures on agreements not registered yet are dropped (the old
    signer's: the brand signs them again). With its own signer, the brand signs an agreement's
    `typed_data` and sends the signature to `POST /v1/agreements/{id}/sign`."""
    if principal.partner_id != partner_id:
        raise NotFoundError(ErrorCode.PARTNER_NOT_FOUND, f"no partner {partner_id}")
    exchange = runtime.exchange()  # read before the change: an unconfigured exchange or a chain away changes nothing
    partner = partners.get(uow, partner_id)
    onchain = exchange.signer_of(partner.issuer_address)
    with write_lock(uow.session):
        address = checksum(body.address) if body.address is not None else None
        partner = agreements.set_signer(uow, partner_id, address)
        uow.session.commit()
    return AgreementSignerPublic(
        partner_id=partner.id, address=partner.agreement_signer, onchain=onchain == agreements.signer_of(partner)
    )


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
