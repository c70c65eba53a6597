"""A signed-in member's own routes: its profile, balance, history and redemptions, approving or
declining what a partner asked, exchanges and donations, one-time codes for a checkout, and
linking itself to partners."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from loyalty.api.deps import Signed, UowDep, bearer
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.routes.agreements import list_agreements
from loyalty.api.routes.challenges import my_challenges
from loyalty.api.routes.donations import consent_public as donation_consent
from loyalty.api.routes.donations import public as donation_public
from loyalty.api.routes.exchanges import chain_view, consent_public
from loyalty.api.routes.exchanges import public as exchange_public
from loyalty.api.routes.leaderboards import list_leaderboards
from loyalty.api.routes.members import detail, history_page, public, referrals_page, tier_public
from loyalty.api.routes.redemptions import public as redemption_public
from loyalty.api.routes.rewards import list_rewards
from loyalty.api.schemas import (
    ConsentQuote,
    CursorQuery,
    DonationPublic,
    ExchangeConsentQuote,
    ExchangePublic,
    IdPath,
    LedgerEntry,
    Limit,
    LinkCreate,
    LinkPublic,
    MemberDetail,
    MeProfile,
    MeWallet,
    MyDonationConsentCreate,
    MyDonationCreate,
    MyExchangeConsentCreate,
    MyExchangeCreate,
    Page,
    ProgramQuery,
    RedemptionCodeCreate,
    RedemptionCodeCreated,
    RedemptionPublic,
    ReferralPublic,
    TierPublic,
)
from loyalty.db.models import LinkSource, Member
from loyalty.db.session import write_lock
from loyalty.errors import ErrorCode, NotFoundError
from loyalty.services import credentials, donations, exchanges, members, partners, redemptions
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/me", tags=["me"])


def _me(uow: UnitOfWork, principal: Signed) -> Member:
    assert principal.member_id is not None
    return members.get(uow, principal.member_id)


@router.get("", response_model=MeProfile)
def profile(uow: UowDep, principal: Signed) -> MeProfile:
    member = _me(uow, principal)
    return MeProfile(**public(member).model_dump(), partner_ids=members.links(uow, member))


WALLET_RECENT = 20


@router.get("/wallet", response_model=MeWallet)
def wallet(uow: UowDep, principal: Signed) -> MeWallet:
    """Everything a member's wallet shows, in one answer (the web wallet is built on it): the
    profile, balances, tier, redemptions, the latest entries newest first, challenges, the
    active catalog, the agreements it may exchange under and the active leaderboards (its rank
    in each: GET /v1/me/leaderboards/{id})."""
    member = _me(uow, principal)
    try:
        tier: TierPublic | None = tier_public(uow, member)
    except NotFoundError:  # the program has no tier ladder
        tier = None
    return MeWallet(
        profile=MeProfile(**public(member).model_dump(), partner_ids=members.links(uow, member)),
        balance=detail(uow, member),
        tier=tier,
        redemptions=[redemption_public(uow, r) for r in redemptions.of_member(uow, member)],
        recent=[
            LedgerEntry.model_validate(e, from_attributes=True) for e in members.recent(uow, member, WALLET_RECENT)
        ],
        challenges=my_challenges(uow, principal),
        rewards=list_rewards(
            uow, principal, active=True, partner_id=None, program_id=None, limit=100, cursor=None
        ).data,
        agreements=list_agreements(uow, principal, limit=100, cursor=None).data,
        leaderboards=[b for b in list_leaderboards(uow, principal, limit=100, cursor=None).data if b.active],
    )


@router.get("/balance", response_model=MemberDetail)
def balance(uow: UowDep, principal: Signed) -> MemberDetail:
    """The balance (read from the chain) and the points by expiry date."""
    return detail(uow, _me(uow, principal))


@router.get("/tier", response_model=TierPublic)
def my_tier(uow: UowDep, principal: Signed, program_id: ProgramQuery = None) -> TierPublic:
    """The member's tier in a program (default: the first) and why (see GET /v1/members/{id}/tier)."""
    return tier_public(uow, _me(uow, principal), program_id=program_id)


@router.get("/referrals", response_model=Page[ReferralPublic])
def my_referrals(
    uow: UowDep, principal: Signed, limit: Limit = 100, cursor: CursorQuery = None
) -> Page[ReferralPublic]:
    """The friends the member referred with its code (`referral_code` in GET /v1/me), and what
    each referral paid."""
    return referrals_page(uow, _me(uow, principal), cursor, limit)


@router.get("/history", response_model=Page[LedgerEntry])
def history(uow: UowDep, principal: Signed, limit: Limit = 100, cursor: CursorQuery = None) -> Page[LedgerEntry]:
    """Every earn, redemption and expiry, at every partner, oldest first."""
    return history_page(uow, _me(uow, principal), None, cursor, limit)


@router.get("/redemptions", response_model=list[RedemptionPublic])
def my_redemptions(uow: UowDep, principal: Signed) -> list[RedemptionPublic]:
    """The member's redemptions, newest first; those `awaiting_member` wait for its answer."""
    return [redemption_public(uow, r) for r in redemptions.of_member(uow, _me(uow, principal))]


@router.post("/redemptions/{redemption_id}/approve", response_model=RedemptionPublic)
def approve(redemption_id: IdPath, request: Request, uow: UowDep, principal: Signed, digest: Digest) -> JSONResponse:
    """Approve a redemption a partner asked for: the service signs the consent with the key it
    keeps for the member, and the points are burned."""

    def write() -> tuple[int, RedemptionPublic]:
        return 200, redemption_public(uow, redemptions.approve(uow, _me(uow, principal), redemption_id))

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/redemptions/{redemption_id}/decline", response_model=RedemptionPublic)
def decline(redemption_id: IdPath, request: Request, uow: UowDep, principal: Signed, digest: Digest) -> JSONResponse:
    """Decline a redemption a partner asked for: nothing is burned."""

    def write() -> tuple[int, RedemptionPublic]:
        return 200, redemption_public(uow, redemptions.decline(uow, _me(uow, principal), redemption_id))

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/exchanges", response_model=Page[ExchangePublic])
def my_exchanges(
    uow: UowDep, principal: Signed, limit: Limit = 100, cursor: CursorQuery = None
) -> Page[ExchangePublic]:
    """The member's exchanges between programs, oldest first; those `awaiting_member` wait for its answer."""
    page = exchanges.page(
        uow, partner_id=None, member_id=_me(uow, principal).id, status=None, cursor=cursor, limit=limit
    )
    return Page(data=[exchange_public(uow, r) for r in page.rows], next_cursor=page.next_cursor)


@router.post("/exchanges/consents", status_code=201, response_model=ExchangeConsentQuote)
def my_exchange_consent(
    body: MyExchangeConsentCreate, request: Request, uow: UowDep, principal: Signed, digest: Digest
) -> JSONResponse:
    """The consent a self-custody member signs for its own exchange (then POST /v1/me/exchanges)."""

    def write() -> tuple[int, ExchangeConsentQuote]:
        row, typed = exchanges.quote(uow, _me(uow, principal), body.agreement_id, body.amount_in, None)
        return 201, consent_public(uow, row, typed)

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/exchanges", status_code=201, response_model=ExchangePublic)
def my_exchange(
    body: MyExchangeCreate, request: Request, uow: UowDep, principal: Signed, digest: Digest
) -> JSONResponse:
    """Exchange the member's own points under a registered agreement (quote it first with POST
    /v1/exchanges/quote). Custodial: this request is the consent (the service signs with the
    member's key when it relays it). Self-custody: send the signed consent."""

    assert principal.member_id is not None
    view = chain_view(uow, [(body.agreement_id, principal.member_id)], None)

    def write() -> tuple[int, ExchangePublic]:
        signature = None if body.signature is None else bytes.fromhex(body.signature[2:])
        row = exchanges.request(
            uow, _me(uow, principal), body.agreement_id, body.amount_in, partner_id=None, by_member=True,
            signature=signature, deadline=body.deadline, view=view,
        )  # fmt: skip
        return 201, exchange_public(uow, row)

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/exchanges/{exchange_id:int}/approve", response_model=ExchangePublic)
def approve_exchange(
    exchange_id: IdPath, request: Request, uow: UowDep, principal: Signed, digest: Digest
) -> JSONResponse:
    """Approve an exchange a partner asked for: reserved, then relayed."""

    def write() -> tuple[int, ExchangePublic]:
        return 200, exchange_public(uow, exchanges.approve(uow, _me(uow, principal), exchange_id))

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/exchanges/{exchange_id:int}/decline", response_model=ExchangePublic)
def decline_exchange(
    exchange_id: IdPath, request: Request, uow: UowDep, principal: Signed, digest: Digest
) -> JSONResponse:
    """Decline an exchange a partner asked for: nothing moves."""

    def write() -> tuple[int, ExchangePublic]:
        return 200, exchange_public(uow, exchanges.decline(uow, _me(uow, principal), exchange_id))

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/donations", response_model=Page[DonationPublic])
def my_donations(
    uow: UowDep, principal: Signed, limit: Limit = 100, cursor: CursorQuery = None
) -> Page[DonationPublic]:
    """The member's donations, oldest first; a posted one's `tx_hash` is its receipt."""
    page = donations.page(
        uow, partner_id=None, member_id=_me(uow, principal).id, charity_id=None, cursor=cursor, limit=limit
    )
    return Page(data=[donation_public(uow, row) for row in page.rows], next_cursor=page.next_cursor)


@router.get("/donations/{donation_id:int}", response_model=DonationPublic)
def my_donation(donation_id: IdPath, uow: UowDep, principal: Signed) -> DonationPublic:
    """A donation and, once posted, its receipt: the transaction that burned the points."""
    return donation_public(uow, donations.get(uow, donation_id, member_id=_me(uow, principal).id))


@router.post("/donations/consents", status_code=201, response_model=ConsentQuote)
def my_donation_consent(
    body: MyDonationConsentCreate, request: Request, uow: UowDep, principal: Signed, digest: Digest
) -> JSONResponse:
    """The consent a self-custody member signs for its own donation (then POST /v1/me/donations)."""

    def write() -> tuple[int, ConsentQuote]:
        program_id = body.program_id or partners.FIRST_PROGRAM
        typed = donations.quote(uow, _me(uow, principal), body.charity_id, program_id, body.amount_points)
        return 201, donation_consent(typed)

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/donations", status_code=201, response_model=DonationPublic)
def donate(body: MyDonationCreate, request: Request, uow: UowDep, principal: Signed, digest: Digest) -> JSONResponse:
    """Donate points to a charity. Custodial: this request is the consent (the service signs with
    the member's key). Self-custody: send the signed consent. It cannot be reversed."""

    def write() -> tuple[int, DonationPublic]:
        signature = None if body.signature is None else bytes.fromhex(body.signature[2:])
        row = donations.donate(
            uow, _me(uow, principal), body.charity_id, body.program_id or partners.FIRST_PROGRAM, body.amount_points,
            signature=signature, deadline=body.deadline,
        )  # fmt: skip
        return 201, donation_public(uow, row)

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/redemption-codes", status_code=201, response_model=RedemptionCodeCreated)
def redemption_code(
    body: RedemptionCodeCreate, request: Request, uow: UowDep, principal: Signed, digest: Digest
) -> JSONResponse:
    """A one-time code to give a partner's checkout: it redeems once, at that partner, up to
    `max_points`, within 10 minutes."""

    def write() -> tuple[int, RedemptionCodeCreated]:
        member = _me(uow, principal)
        if not members.is_linked(uow, member.id, body.partner_id):
            raise NotFoundError(
                ErrorCode.PARTNER_NOT_FOUND, f"member {member.id} is not linked to partner {body.partner_id}"
            )
        code, expires_at = credentials.new_redemption_code(uow, member, body.partner_id, body.max_points)
        return 201, RedemptionCodeCreated(
            code=code, partner_id=body.partner_id, max_points=body.max_points, expires_at=expires_at
        )

    return idempotent(request, digest, uow.session, principal, write, secret=True)


@router.post("/links", status_code=201, response_model=LinkPublic)
def link(body: LinkCreate, request: Request, uow: UowDep, principal: Signed, digest: Digest) -> JSONResponse:
    """Link the member to a partner: the partner may then see the member, earn to it and ask it
    for redemptions."""

    def write() -> tuple[int, LinkPublic]:
        created = members.link(uow, _me(uow, principal), body.partner_id, LinkSource.MEMBER)
        return 201, LinkPublic.model_validate(created, from_attributes=True)

    return idempotent(request, digest, uow.session, principal, write)


@router.delete("/session", status_code=204)
def sign_out(
    uow: UowDep, _: Signed, token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Response:
    """End this session (sign out)."""
    assert token is not None  # `Signed` let a session through
    with write_lock(uow.session):
        credentials.end_session(uow, token.credentials.strip())
        uow.session.commit()
    return Response(status_code=204)
