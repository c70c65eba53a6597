"""Charity donations: a member gives points to a charity partner.

The points are burned by a consented redemption of the charity's donation reward at the
charity's own issuer account, so the chain shows each donation at the charity's address and
anyone can total them (`audit.statements.donated`). The donation records what the points are
worth at the charity's published rate on the day (rounded down): what the program owes the
charity. A donation is never reversed; its status is its redemption's (voided only if the chain
refused the burn, when nothing was given).
"""

from __future__ import annotations

from sqlalchemy import Select, or_, select

from loyalty.db.models import (
    ChainWrite,
    Charity,
    Donation,
    Member,
    Partner,
    PartnerKind,
    Redemption,
    RedemptionStatus,
    Reward,
    utcnow,
)
from loyalty.domain.consent import RedeemConsent
from loyalty.errors import ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import partners, redemptions
from loyalty.services.lists import Page, keyset
from loyalty.services.uow import UnitOfWork

BIGINT_MAX = 2**63 - 1  # what a money column holds


def cash_value(points: int, rate: Charity) -> int:
    """What `points` are worth at the charity's rate, in minor units, rounded down."""
    return points * rate.cash_minor // rate.points


def charity(uow: UnitOfWork, partner_id: int) -> tuple[Partner, Charity]:
    """A charity partner and its rate: `404 partner_not_found`, `422 not_a_charity`."""
    found = partners.get(uow, partner_id)
    rate = uow.session.get(Charity, partner_id)
    if found.kind != PartnerKind.CHARITY or rate is None:
        raise UnprocessableError(ErrorCode.NOT_A_CHARITY, f"partner {partner_id} is not a charity")
    return found, rate


def set_rate(uow: UnitOfWork, partner_id: int, cash_minor: int, points: int, currency: str) -> Charity:
    """Publish a new rate: later donations are worth it, earlier ones keep theirs. The currency
    stays (a statement adds up one currency)."""
    _, rate = charity(uow, partner_id)
    if currency != rate.currency:
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR,
            f"charity {partner_id}'s donations are valued in {rate.currency}, not {currency}",
        )
    rate.cash_minor, rate.points, rate.currency, rate.updated_at = cash_minor, points, currency, utcnow()
    uow.session.flush()
    return rate


def reward_in(uow: UnitOfWork, charity_id: int, program_id: int) -> Reward:
    """The charity's donation reward in a program: `422 program_not_joined` if it takes no
    donations there (the admin adds it as it adds a brand)."""
    reward = uow.session.scalar(select(Reward).where(Reward.partner_id == charity_id, Reward.program_id == program_id))
    if reward is None:
        raise partners.not_joined(charity_id, program_id)
    return reward


def quote(uow: UnitOfWork, member: Member, charity_id: int, program_id: int, amount_points: int) -> dict[str, object]:
    """The typed data a self-custody member signs to donate `amount_points` (works once, for an hour)."""
    charity(uow, charity_id)
    reward = reward_in(uow, charity_id, program_id)
    consent: RedeemConsent = redemptions.quote(uow, member, reward, amount_points)
    return redemptions.typed_data(uow, consent, reward)


def donate(
    uow: UnitOfWork,
    member: Member,
    charity_id: int,
    program_id: int,
    amount_points: int,
    *,
    relayed_by: int | None = None,
    signature: bytes | None = None,
    deadline: int | None = None,
    code: str | None = None,
) -> Donation:
    """A donation, with the member's consent as for a redemption: asked in its own session
    (`relayed_by` None: that is the consent of a custodial member), or relayed by a partner with
    the member's signature, its one-time code for that partner, or else awaiting its approval."""
    _, rate = charity(uow, charity_id)
    if cash_value(amount_points, rate) > BIGINT_MAX:
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR, f"{amount_points} points are worth more than a donation can record"
        )
    reward = reward_in(uow, charity_id, program_id)
    redemption = redemptions.redeem(
        uow, member, reward, signature=signature, deadline=deadline, code=code, amount_points=amount_points,
        asked_by=relayed_by, by_member=relayed_by is None,
    )  # fmt: skip
    donation = Donation(
        redemption_id=redemption.id, charity_id=charity_id, program_id=program_id, member_id=member.id,
        relayed_by=relayed_by, amount_points=amount_points, cash_minor=cash_value(amount_points, rate),
        currency=rate.currency, rate_cash_minor=rate.cash_minor, rate_points=rate.points,
    )  # fmt: skip
    uow.session.add(donation)
    uow.session.flush()
    return donation


def get(uow: UnitOfWork, donation_id: int, partner_id: int | None = None, member_id: int | None = None) -> Donation:
    """A donation; a partner sees those made to it or relayed by it, a member its own."""
    found = uow.session.get(Donation, donation_id)
    if (
        found is None
        or (partner_id is not None and partner_id not in (found.charity_id, found.relayed_by))
        or (member_id is not None and found.member_id != member_id)
    ):
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no donation {donation_id}")
    return found


def _visible(query: Select[Donation], partner_id: int | None, member_id: int | None) -> Select[Donation]:
    if partner_id is not None:
        query = query.where(or_(Donation.charity_id == partner_id, Donation.relayed_by == partner_id))
    if member_id is not None:
        query = query.where(Donation.member_id == member_id)
    return query


def page(
    uow: UnitOfWork,
    *,
    partner_id: int | None,
    member_id: int | None,
    charity_id: int | None,
    cursor: str | None,
    limit: int,
) -> Page[Donation]:
    """Donations, oldest first: a partner's (made to it or relayed by it), a member's, a charity's."""
    query = _visible(select(Donation), partner_id, member_id)
    if charity_id is not None:
        query = query.where(Donation.charity_id == charity_id)
    return keyset(uow.session, query, [Donation.id], cursor, limit)


def in_blocks(uow: UnitOfWork, charity_id: int, program_id: int, from_block: int, to_block: int) -> list[Donation]:
    """The charity's donations in a program whose burn is final in [from_block, to_block]."""
    return list(
        uow.session.scalars(
            select(Donation)
            .join(Redemption, Redemption.id == Donation.redemption_id)
            .join(ChainWrite, ChainWrite.id == Redemption.write_id)
            .where(
                Donation.charity_id == charity_id,
                Donation.program_id == program_id,
                Redemption.status == RedemptionStatus.POSTED,
                ChainWrite.block_number.between(from_block, to_block),
            )
            .order_by(Donation.id)
        )
    )
