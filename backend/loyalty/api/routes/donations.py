"""Charity donations: points a member gives a charity partner, burned at the charity's account
with the member's consent (as for a redemption), worth the charity's published rate in money,
which the program owes the charity (its statement). A donation is never reversed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Partnered, Reader, RuntimeDep, UowDep
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    MAX_INT,
    ConsentQuote,
    CursorQuery,
    DonationConsentCreate,
    DonationCreate,
    DonationPublic,
    DonationRate,
    DonationStatement,
    IdPath,
    Limit,
    Page,
    ProgramQuery,
    TimeQuery,
    on_chain,
    parse_time,
)
from loyalty.audit import statements
from loyalty.audit.rpc import Rpc
from loyalty.db.models import ChainWrite, Donation, Partner, Redemption, RedemptionStatus
from loyalty.domain.consent import for_ethers, for_wallets
from loyalty.errors import ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import donations, members, partners, purchases
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1", tags=["donations"])


def public(uow: UnitOfWork, row: Donation) -> DonationPublic:
    redemption = uow.session.get(Redemption, row.redemption_id)
    charity = uow.session.get(Partner, row.charity_id)
    assert redemption is not None and charity is not None
    write = uow.session.get(ChainWrite, redemption.write_id) if redemption.write_id else None
    return DonationPublic(
        id=row.id, charity_id=row.charity_id, charity_name=charity.name, program_id=row.program_id,
        member_id=row.member_id, relayed_by=row.relayed_by, amount_points=row.amount_points, cash_minor=row.cash_minor,
        currency=row.currency, rate=DonationRate(cash_minor=row.rate_cash_minor, points=row.rate_points,
        currency=row.currency), status=RedemptionStatus(redemption.status), redemption_id=row.redemption_id,
        **on_chain(write), created_at=row.created_at, error=redemption.error,
    )  # fmt: skip


def consent_public(typed: dict[str, object]) -> ConsentQuote:
    message = typed["message"]
    assert isinstance(message, dict)
    return ConsentQuote(typed_data=for_wallets(typed), ethers=for_ethers(typed), deadline=int(message["deadline"]))


@router.post("/donations/consents", status_code=201, response_model=ConsentQuote)
def create_consent(
    body: DonationConsentCreate, request: Request, uow: UowDep, principal: Partnered, digest: Digest
) -> JSONResponse:
    """The EIP-712 consent a self-custody member signs for a donation a partner relays (valid
    for an hour, works once); then POST /v1/donations with the signature."""

    def write() -> tuple[int, ConsentQuote]:
        member = members.get(uow, body.member_id, principal.partner_id)
        program_id = body.program_id or partners.FIRST_PROGRAM
        return 201, consent_public(donations.quote(uow, member, body.charity_id, program_id, body.amount_points))

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/donations", status_code=201, response_model=DonationPublic)
def donate(body: DonationCreate, request: Request, uow: UowDep, principal: Partnered, digest: Digest) -> JSONResponse:
    """Relay a member's donation to a charity (a brand's checkout, or the charity itself).
    Self-custody: the member's signed consent. Custodial: the member's one-time code for this
    partner, or nothing and it awaits the member's approval (`awaiting_member`)."""

    def write() -> tuple[int, DonationPublic]:
        member = members.get(uow, body.member_id, principal.partner_id)
        signature = None if body.signature is None else bytes.fromhex(body.signature[2:])
        row = donations.donate(
            uow, member, body.charity_id, body.program_id or partners.FIRST_PROGRAM, body.amount_points,
            relayed_by=principal.partner_id, signature=signature, deadline=body.deadline, code=body.redemption_code,
        )  # fmt: skip
        return 201, public(uow, row)

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/donations", response_model=Page[DonationPublic])
def list_donations(
    uow: UowDep,
    principal: Reader,
    charity_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    member_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    limit: Limit = 100,
    cursor: CursorQuery = None,
) -> Page[DonationPublic]:
    """Donations, oldest first; a partner sees those made to it (a charity) or relayed by it."""
    page = donations.page(
        uow, partner_id=principal.partner_id, member_id=member_id, charity_id=charity_id, cursor=cursor, limit=limit
    )
    return Page(data=[public(uow, row) for row in page.rows], next_cursor=page.next_cursor)


@router.get("/donations/{donation_id:int}", response_model=DonationPublic)
def get_donation(donation_id: IdPath, uow: UowDep, principal: Reader) -> DonationPublic:
    return public(uow, donations.get(uow, donation_id, partner_id=principal.partner_id))


@router.get("/partners/{partner_id}/donation-statement", response_model=DonationStatement)
def donation_statement(
    partner_id: IdPath, uow: UowDep, runtime: RuntimeDep, principal: Reader, since: TimeQuery = None,
    until: TimeQuery = None, program_id: ProgramQuery = None,
) -> DonationStatement:  # fmt: skip
    """What a program (default: the first) owes a charity for [since, until): its donations
    whose burn is final in the window, each at the rate of its day, beside the same count and
    points from the chain's events alone (`loyalty audit donations` computes them too; a burn
    not final yet shows there first). The admin, auditors and the charity itself."""
    if principal.partner_id not in (None, partner_id):
        raise NotFoundError(ErrorCode.PARTNER_NOT_FOUND, f"no partner {partner_id}")
    start, end = parse_time(since), parse_time(until)
    if start is None or end is None or start >= end:
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, "give `since` before `until`")
    _, rate = donations.charity(uow, partner_id)
    program_id = program_id or partners.FIRST_PROGRAM
    account = partners.account_in(uow, partner_id, program_id)
    program = purchases.program(uow.session, program_id)
    rpc = Rpc(runtime.settings.rpc_url)
    try:
        found = statements.donated(
            rpc, str(program.token_address), account.issuer_address, since=int(start.timestamp()),
            until=int(end.timestamp()), from_block=int(program.deployment_block or 0),
        )  # fmt: skip
    finally:
        rpc.close()
    rows = donations.in_blocks(uow, partner_id, program_id, found.from_block, found.to_block)
    points = sum(row.amount_points for row in rows)
    return DonationStatement(
        charity_id=partner_id, program_id=program_id, since=start, until=end, from_block=found.from_block,
        to_block=found.to_block, donations=len(rows), donated_points=points,
        cash_minor=sum(row.cash_minor for row in rows), currency=rate.currency, onchain_donations=found.donations,
        onchain_points=found.points, matches=(found.donations, found.points) == (len(rows), points),
        tx_hashes=found.tx_hashes,
    )  # fmt: skip
