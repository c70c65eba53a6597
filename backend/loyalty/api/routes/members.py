"""Members, their balance by expiry date, and their ledger history. A partner sees a member
only once linked to it (it enrolled the member, or the member linked itself), and sees only its
own entries; admins and auditors see every member."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from loyalty.api.deps import Admin, Reader, UowDep, Writer
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    MAX_INT,
    AwardPublic,
    CursorQuery,
    ExpiringPoints,
    IdPath,
    LedgerEntry,
    Limit,
    LinkCreate,
    LinkPublic,
    LinkToken,
    MemberCreate,
    MemberCreated,
    MemberDetail,
    MemberPublic,
    Page,
    ProgramBalance,
    ProgramQuery,
    ReferralPublic,
    SegmentsPublic,
    SegmentsSet,
    TierPublic,
    TierSubscriptionCreate,
    TierSubscriptionPublic,
)
from loyalty.db.models import LinkSource, Member, MemberTokenKind, Program, ProgramStatus, utcnow
from loyalty.db.session import write_lock
from loyalty.errors import ErrorCode, ForbiddenError, UnprocessableError
from loyalty.services import awards, credentials, events, members, partners, referrals, tiers
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/members", tags=["members"])


def public(member: Member) -> MemberPublic:
    return MemberPublic.model_validate(member, from_attributes=True)


def detail(uow: UnitOfWork, member: Member, partner_id: int | None = None) -> MemberDetail:
    """The member with its balance by expiry (from the chain), and in each program its balance,
    points pending and debt (with `partner_id`, pending and debt at that partner only)."""
    lots = uow.token.lots_of(member.wallet_address)
    balance = sum(amount for _, amount in lots)
    shown = [
        p
        for p in uow.session.scalars(
            select(Program).where(Program.status == ProgramStatus.ACTIVE, Program.token_address.is_not(None)).order_by(Program.id)
        )
        if p.token_address is not None
    ]  # fmt: skip
    owed = {p.id: awards.owed_in(uow.session, member.id, p.id, partner_id) for p in shown}
    programs = [
        ProgramBalance(
            program_id=p.id, symbol=p.symbol, token_address=p.token_address,
            balance_points=balance if p.id == 1 else uow.token_at(p.token_address).balance_of(member.wallet_address),
            pending_points=owed[p.id][0], debt_points=owed[p.id][1],
        )
        for p in shown
        if p.token_address is not None
    ]  # fmt: skip
    first = next((p for p in programs if p.program_id == partners.FIRST_PROGRAM), None)
    return MemberDetail(
        **public(member).model_dump(),
        balance_points=balance,
        programs=programs,
        pending_points=first.pending_points if first else 0,
        debt_points=first.debt_points if first else 0,
        expiring=[
            ExpiringPoints(expires_at=datetime.fromtimestamp(expires_at, UTC), amount_points=amount)
            for expires_at, amount in lots
        ],
    )


@router.post("", status_code=201, response_model=MemberCreated)
def create_member(body: MemberCreate, request: Request, uow: UowDep, principal: Writer, digest: Digest) -> JSONResponse:
    """Enrol a member: with `wallet_address` they hold their own wallet, without it the service
    keeps one. A partner that enrols a member is linked to it, and its `enrolment` rules reward
    the member at once. With a friend's `referral_code` the friend refers it: the partner's
    `referral` rules reward them when its first qualifying purchase is released. A member's credential never
    passes through a partner: only the admin (the operator, who delivers it to the member) gets
    the one-time `enrolment_token` of a custodial member, or may set its first `passphrase`;
    a member a partner enrolled gets its link from the operator (POST
    /v1/members/{id}/passphrase-resets). Nobody can spend its points until it signs in and
    approves."""
    if body.passphrase is not None and principal.role != "admin":
        raise ForbiddenError(
            ErrorCode.FORBIDDEN, "only the operator may set a member's passphrase: a partner must not know it"
        )

    def write() -> tuple[int, MemberCreated]:
        member = members.create(
            uow,
            body.external_id,
            body.wallet_address,
            partner_id=principal.partner_id,
            smart_wallet=body.smart_wallet,
            passphrase=body.passphrase,
        )
        if body.referral_code is not None:
            referrals.refer(uow, member, body.referral_code, principal.partner_id)
        if principal.partner_id is not None:
            events.enrolled(uow, principal.partner_id, member)
        created = MemberCreated(**public(member).model_dump())
        if member.custodial and member.passphrase_hash is None and principal.role == "admin":
            created.enrolment_token, created.enrolment_expires_at = credentials.new_link(
                uow, member, MemberTokenKind.ENROLMENT
            )
        return 201, created

    return idempotent(request, digest, uow.session, principal, write, secret=True)


@router.get("", response_model=Page[MemberPublic])
def list_members(
    uow: UowDep,
    principal: Reader,
    external_id: Annotated[str | None, Query(max_length=200)] = None,
    wallet_address: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$")] = None,
    partner_id: Annotated[
        int | None, Query(ge=1, le=MAX_INT, description="linked to this partner (admins, auditors)")
    ] = None,
    limit: Limit = 100,
    cursor: CursorQuery = None,
) -> Page[MemberPublic]:
    """Members, oldest first, by external id, wallet or partner link; a partner lists the members
    linked to it."""
    page = members.list_members(
        uow,
        partner_id=principal.partner_id or partner_id,
        external_id=external_id,
        wallet_address=wallet_address,
        cursor=cursor,
        limit=limit,
    )
    return Page(data=[public(m) for m in page.rows], next_cursor=page.next_cursor)


@router.get("/{member_id}", response_model=MemberDetail)
def get_member(member_id: IdPath, uow: UowDep, principal: Reader) -> MemberDetail:
    """A member with their balance (read from the chain) and their points by expiry date."""
    return detail(uow, members.get(uow, member_id, principal.partner_id), principal.partner_id)


@router.get("/{member_id}/history", response_model=Page[LedgerEntry])
def get_history(
    member_id: IdPath, uow: UowDep, principal: Reader, limit: Limit = 100, cursor: CursorQuery = None
) -> Page[LedgerEntry]:
    """Earns, redemptions and expiries of a member, oldest first, each with its transaction; a
    partner sees its own earns and redemptions only."""
    member = members.get(uow, member_id, principal.partner_id)
    return history_page(uow, member, principal.partner_id, cursor, limit)


def history_page(
    uow: UnitOfWork, member: Member, partner_id: int | None, cursor: str | None, limit: int
) -> Page[LedgerEntry]:
    page = members.history_page(uow, member, partner_id, cursor, limit)
    return Page(
        data=[LedgerEntry.model_validate(e, from_attributes=True) for e in page.rows], next_cursor=page.next_cursor
    )


def tier_public(
    uow: UnitOfWork, member: Member, partner_id: int | None = None, program_id: int | None = None
) -> TierPublic:
    """The member's tier in a program (default: the first); a partner asking sees the tier and
    the thresholds, not the metric's value (it sums the member's spend at every partner there)."""
    program_id = program_id or partners.FIRST_PROGRAM
    view = tiers.view(uow.session, member.id, utcnow(), program_id)
    earned = view.earned
    hidden = partner_id is not None
    return TierPublic(
        program_id=program_id,
        tier=view.tier,
        earned_tier=earned.tier,
        paid_tier=view.paid.tier if view.paid else None,
        paid_until=view.paid.ends_at if view.paid else None,
        metric=earned.metric,
        value=None if hidden else earned.value,
        threshold=earned.threshold,
        points_required_to_remain=None if hidden else earned.points_required_to_remain,
        next_tier=earned.next_tier,
        required_for_next=None if hidden else earned.required_for_next,
        next_review_at=earned.next_review_at,
        benefits=list(view.benefits),
        multiplier_numerator=view.multiplier[0] if view.multiplier else None,
        multiplier_denominator=view.multiplier[1] if view.multiplier else None,
    )


@router.get("/{member_id}/tier", response_model=TierPublic)
def member_tier(member_id: IdPath, uow: UowDep, principal: Reader, program_id: ProgramQuery = None) -> TierPublic:
    """The member's tier in a program (default: the first; the higher of earned and paid) and
    why: its metric against the thresholds, what keeps it, what reaches the next, and when it
    is next reviewed."""
    return tier_public(uow, members.get(uow, member_id, principal.partner_id), principal.partner_id, program_id)


@router.post("/{member_id}/tier-subscriptions", status_code=201, response_model=TierSubscriptionPublic)
def subscribe(
    member_id: IdPath, body: TierSubscriptionCreate, request: Request, uow: UowDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """A paid tier for a period, paid in money (`payment_ref`, each used once). Bought while
    another runs, it starts when that one ends (a renewal). The member's tier is the higher of
    this and the earned one. In another program than the first (`program_id`), a partner sells
    it only where it issues."""

    def write() -> tuple[int, TierSubscriptionPublic]:
        member = members.get(uow, member_id, principal.partner_id)
        program_id = body.program_id or partners.FIRST_PROGRAM
        if principal.partner_id is not None:
            partners.account_in(uow, principal.partner_id, program_id)  # 422 program_not_joined
        bought = tiers.subscribe(
            uow,
            member.id,
            sold_by=principal.partner_id,
            program_id=program_id,
            **body.model_dump(exclude={"program_id"}),
        )
        return 201, TierSubscriptionPublic.model_validate(bought, from_attributes=True)

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/{member_id}/tier-subscriptions/{subscription_id}/cancel", response_model=TierSubscriptionPublic)
def cancel_subscription(
    member_id: IdPath, subscription_id: IdPath, request: Request, uow: UowDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """End a paid tier now (any refund of the money is the seller's). A partner ends only the
    tiers it sold."""

    def write() -> tuple[int, TierSubscriptionPublic]:
        member = members.get(uow, member_id, principal.partner_id)
        return 200, TierSubscriptionPublic.model_validate(
            tiers.cancel(uow, member.id, subscription_id, principal.partner_id), from_attributes=True
        )

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/{member_id}/segments", response_model=SegmentsPublic)
def get_segments(
    member_id: IdPath,
    uow: UowDep,
    principal: Reader,
    partner_id: Annotated[int | None, Query(ge=1, le=MAX_INT, description="whose tags (admins, auditors)")] = None,
) -> SegmentsPublic:
    """The member's segment tags at a partner (a partner sees its own)."""
    member = members.get(uow, member_id, principal.partner_id)
    owner = _tagger(principal.partner_id, partner_id)
    return SegmentsPublic(member_id=member.id, partner_id=owner, tags=members.segments(uow, member, owner))


@router.put("/{member_id}/segments", response_model=SegmentsPublic)
def set_segments(
    member_id: IdPath,
    body: SegmentsSet,
    uow: UowDep,
    principal: Writer,
    partner_id: Annotated[int | None, Query(ge=1, le=MAX_INT, description="whose tags (the admin)")] = None,
) -> SegmentsPublic:
    """Set the member's segment tags at a partner (a partner its own; PUT is naturally
    idempotent): its rules and campaigns may be for members with a tag."""
    with write_lock(uow.session):
        member = members.get(uow, member_id, principal.partner_id)
        owner = _tagger(principal.partner_id, partner_id)
        partners.brand(uow, owner)
        tags = members.set_segments(uow, member, owner, body.tags)
        uow.session.commit()
    return SegmentsPublic(member_id=member.id, partner_id=owner, tags=tags)


def _tagger(caller: int | None, asked: int | None) -> int:
    """Whose segment tags: a partner's own; the partner an admin or auditor names."""
    if caller is not None:
        return caller
    if asked is None:
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, "name the partner whose tags these are: ?partner_id=")
    return asked


@router.get("/{member_id}/referrals", response_model=Page[ReferralPublic])
def get_referrals(
    member_id: IdPath, uow: UowDep, principal: Reader, limit: Limit = 100, cursor: CursorQuery = None
) -> Page[ReferralPublic]:
    """The friends the member referred, oldest first, with what each referral paid; a partner
    sees those of friends it enrolled, and what it paid."""
    return referrals_page(uow, members.get(uow, member_id, principal.partner_id), cursor, limit, principal.partner_id)


def referrals_page(
    uow: UnitOfWork, member: Member, cursor: str | None, limit: int, partner_id: int | None = None
) -> Page[ReferralPublic]:
    page = referrals.page_referrals(uow, member.id, cursor, limit, partner_id)
    return Page(
        data=[
            ReferralPublic(
                **{k: getattr(r, k) for k in ReferralPublic.model_fields if k != "awards"},
                awards=[
                    AwardPublic.model_validate(a, from_attributes=True)
                    for a in referrals.awards_of(uow.session, r.id, partner_id)
                ],
            )
            for r in page.rows
        ],
        next_cursor=page.next_cursor,
    )


@router.post("/{member_id}/links", status_code=201, response_model=LinkPublic)
def link(
    member_id: IdPath, body: LinkCreate, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Link a member to a partner, which may then see it, earn to it and ask it for redemptions
    (never spend without it). Admin only: for members enrolled before 0.3 that no partner earned
    to, and members the operator enrolled; a member links itself with POST /v1/me/links."""

    def write() -> tuple[int, LinkPublic]:
        created = members.link(uow, members.get(uow, member_id), body.partner_id, LinkSource.OPERATOR)
        return 201, LinkPublic.model_validate(created, from_attributes=True)

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/{member_id}/passphrase-resets", status_code=201, response_model=LinkToken)
def reset_passphrase(
    member_id: IdPath, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """A one-time token (valid an hour) for a custodial member to set a passphrase (a new one,
    or its first when a partner enrolled it): the operator delivers it to the member as a link;
    the member's sessions end when it is used. Admin only: a partner holding it could sign in
    as the member and approve its own redemptions."""

    def write() -> tuple[int, LinkToken]:
        member = members.get(uow, member_id)
        token, expires_at = credentials.new_link(uow, member, MemberTokenKind.RESET)
        return 201, LinkToken(token=token, expires_at=expires_at)

    return idempotent(request, digest, uow.session, principal, write, secret=True)
