"""Members: program-wide identities with a wallet (custodial, or their own)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import Select, delete, func, literal, or_, select, tuple_, union_all
from sqlalchemy.orm import Session

from loyalty.chain.client import checksum, is_zero
from loyalty.db.models import (
    ChainWrite,
    Earn,
    Exchange,
    ExchangeStatus,
    LinkSource,
    Member,
    MemberLink,
    MemberSegment,
    Partner,
    Redemption,
    RedemptionStatus,
    Reward,
)
from loyalty.domain.credentials import hash_passphrase
from loyalty.domain.referrals import new_code
from loyalty.errors import ConflictError, ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import partners
from loyalty.services.lists import Page, decode_cursor, encode_cursor, keyset
from loyalty.services.purchases import DEFAULT_PROGRAM, program
from loyalty.services.uow import UnitOfWork


def create(
    uow: UnitOfWork,
    external_id: str,
    wallet_address: str | None,
    *,
    partner_id: int | None = None,
    smart_wallet: bool = False,
    passphrase: str | None = None,
) -> Member:
    """Enrol a member: with `wallet_address` they hold their own wallet (a contract wallet only
    with `smart_wallet`: it consents through ERC-1271), without it the service keeps one. A
    partner that enrols a member is linked to it."""
    session = uow.session
    if session.scalar(select(Member).where(Member.external_id == external_id)) is not None:
        raise ConflictError(ErrorCode.MEMBER_EXISTS, f"a member with external_id {external_id!r} already exists")
    if wallet_address is None:
        address, sealed = uow.custody.new_wallet()
        member = Member(external_id=external_id, wallet_address=address, custodial=True, wallet_key_sealed=sealed)
        member.passphrase_hash = hash_passphrase(passphrase) if passphrase else None
    else:
        if passphrase:
            raise UnprocessableError(
                ErrorCode.VALIDATION_ERROR, "a member holding its own wallet signs in with it: send no `passphrase`"
            )
        address = checksum(wallet_address)
        _check_wallet(uow, address, smart_wallet)
        if session.scalar(select(Member).where(Member.wallet_address == address)) is not None:
            raise ConflictError(ErrorCode.WALLET_TAKEN, f"wallet {address} already belongs to a member")
        member = Member(external_id=external_id, wallet_address=address, custodial=False, smart_wallet=smart_wallet)
    member.referral_code = _unused_code(uow)
    session.add(member)
    session.flush()
    if partner_id is not None:
        link(uow, member, partner_id, LinkSource.ENROLMENT)
    return member


def _unused_code(uow: UnitOfWork) -> str:
    while uow.session.scalar(select(Member.id).where(Member.referral_code == (code := new_code()))) is not None:
        pass  # one in 10^12 per member enrolled: practically never
    return code


def segments(uow: UnitOfWork, member: Member, partner_id: int) -> list[str]:
    """The member's segment tags at the partner."""
    return list(
        uow.session.scalars(
            select(MemberSegment.tag)
            .where(MemberSegment.member_id == member.id, MemberSegment.partner_id == partner_id)
            .order_by(MemberSegment.tag)
        )
    )


def set_segments(uow: UnitOfWork, member: Member, partner_id: int, tags: Sequence[str]) -> list[str]:
    """Replace the member's segment tags at the partner (its rules and campaigns may be for
    members with a tag); setting the same tags again changes nothing."""
    session = uow.session
    wanted, held = set(tags), set(segments(uow, member, partner_id))
    if gone := held - wanted:
        session.execute(
            delete(MemberSegment).where(
                MemberSegment.member_id == member.id,
                MemberSegment.partner_id == partner_id,
                MemberSegment.tag.in_(gone),
            )
        )
    session.add_all(MemberSegment(member_id=member.id, partner_id=partner_id, tag=tag) for tag in sorted(wanted - held))
    session.flush()
    return sorted(wanted)


def _check_wallet(uow: UnitOfWork, address: str, smart_wallet: bool) -> None:
    """A member's own wallet must be an account that can hold points and consent: not the zero
    address, not the token; a contract only when declared a smart wallet (one that cannot
    answer ERC-1271 could never consent, and its points would be locked away)."""
    if is_zero(address) or address.lower() == uow.token.address.lower():
        raise UnprocessableError(ErrorCode.INVALID_WALLET, f"{address} cannot hold points")
    if uow.chain.has_code(address) != smart_wallet:
        raise UnprocessableError(
            ErrorCode.INVALID_WALLET,
            f"{address} is a contract: enrol it with `smart_wallet: true` if it consents through ERC-1271"
            if not smart_wallet
            else f"{address} is not a contract, so not a smart wallet",
        )


def get(uow: UnitOfWork, member_id: int, partner_id: int | None = None) -> Member:
    """A member; with `partner_id`, only one linked to that partner (others are as if absent)."""
    if partner_id is None:
        member = uow.session.get(Member, member_id)
    else:  # one query, not two
        member = uow.session.scalar(
            select(Member)
            .join(MemberLink, MemberLink.member_id == Member.id)
            .where(Member.id == member_id, MemberLink.partner_id == partner_id)
        )
    if member is None:
        raise NotFoundError(ErrorCode.MEMBER_NOT_FOUND, f"no member {member_id}")
    return member


def is_linked(uow: UnitOfWork, member_id: int, partner_id: int) -> bool:
    return uow.session.get(MemberLink, (member_id, partner_id)) is not None


def link(uow: UnitOfWork, member: Member, partner_id: int, source: LinkSource) -> MemberLink:
    """Link a member to a partner (once: linking again changes nothing)."""
    found = uow.session.get(MemberLink, (member.id, partner_id))
    if found is not None:
        return found
    partners.brand(uow, partner_id)
    created = MemberLink(member_id=member.id, partner_id=partner_id, source=source)
    uow.session.add(created)
    uow.session.flush()
    return created


def links(uow: UnitOfWork, member: Member) -> list[int]:
    """The partners the member is linked to."""
    query = select(MemberLink.partner_id).where(MemberLink.member_id == member.id).order_by(MemberLink.partner_id)
    return list(uow.session.scalars(query))


def links_of(session: Session, member_ids: Sequence[int]) -> dict[int, set[int]]:
    """The partners each member is linked to."""
    found: dict[int, set[int]] = {}
    for member_id, partner_id in session.execute(
        select(MemberLink.member_id, MemberLink.partner_id).where(MemberLink.member_id.in_(member_ids))
    ):
        found.setdefault(member_id, set()).add(partner_id)
    return found


def quiet_since(cutoff: datetime) -> Select[int, str, datetime]:
    """(member id, wallet, last activity) of the members who did nothing after `cutoff`: no
    enrolment, earn, redemption (donations are redemptions) or exchange since."""
    acts = union_all(
        select(Member.id.label("member_id"), Member.created_at.label("at")),
        select(Earn.member_id, func.max(Earn.created_at)).group_by(Earn.member_id),
        select(Redemption.member_id, func.max(Redemption.created_at)).group_by(Redemption.member_id),
        select(Exchange.member_id, func.max(Exchange.created_at)).group_by(Exchange.member_id),
    ).subquery()
    last = (
        select(acts.c.member_id, func.max(acts.c.at).label("last"))
        .group_by(acts.c.member_id)
        .having(func.max(acts.c.at) < cutoff)
        .subquery()
    )
    return (
        select(Member.id, Member.wallet_address, last.c.last)
        .join(last, last.c.member_id == Member.id)
        .order_by(Member.id)
    )


def lock(uow: UnitOfWork, member: Member) -> None:
    """One redemption (or consent) of a member at a time: each counts the ones before it.
    A row lock on PostgreSQL; SQLite's writers take turns anyway (`write_lock`)."""
    uow.session.execute(select(Member.id).where(Member.id == member.id).with_for_update(key_share=True))


def spendable_points(
    uow: UnitOfWork, member: Member, program_id: int = DEFAULT_PROGRAM, state: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Points the member may still spend in a program (redeem, or exchange out), and the consent
    nonce the next spend there takes: redemptions and exchanges share the token's nonce.

    Balance and nonce are read from the chain as of one block. A reserved spend still holds its
    points until its burn is on-chain: one whose transaction is mined already (its nonce is below
    the chain's) is in the balance, not counted again. `state`: the member's (balance, nonce),
    read already (before the write lock, say)."""
    if state is None:
        token = (
            uow.token
            if program_id == DEFAULT_PROGRAM
            else uow.token_at(str(program(uow.session, program_id).token_address))
        )
        state = token.members_state([member.wallet_address], uow.chain.block_number())[member.wallet_address]
    balance, nonce = state
    held_points, held_count = uow.session.execute(
        select(func.coalesce(func.sum(Exchange.amount_in), 0), func.count()).where(
            Exchange.member_id == member.id,
            Exchange.source_program_id == program_id,
            Exchange.status == ExchangeStatus.RESERVED,
            or_(Exchange.write_id.is_(None), Exchange.nonce >= nonce),
        )
    ).one()
    redeeming = uow.session.execute(
        select(func.coalesce(func.sum(Redemption.amount_points), 0), func.count())
        .join(Reward, Reward.id == Redemption.reward_id)
        .where(
            Redemption.member_id == member.id,
            Reward.program_id == program_id,
            Redemption.status == RedemptionStatus.RESERVED,
            or_(Redemption.write_id.is_(None), Redemption.nonce >= nonce),
        )
    ).one()
    held_points, held_count = held_points + redeeming[0], held_count + redeeming[1]
    return balance - int(held_points), nonce + int(held_count)


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a member's history.

    Attributes:
        kind: earn, redeem or expire.
        id: the earn's or redemption's id (none for an expiry: the chain did it).
        partner_id: the brand whose it is (for an earn in another program than the first, or from
            a campaign, the brand's issuer account there); program_id: the program's.
        status: the earn's or redemption's status; `confirmed` for an expiry.
        tx_hash, block_number: where it is on the chain, once it is.
    """

    kind: Literal["earn", "redeem", "expire"]
    id: int | None
    amount_points: int
    status: str
    partner_id: int | None
    program_id: int
    tx_hash: str | None
    block_number: int | None
    created_at: datetime | None


def list_members(
    uow: UnitOfWork,
    *,
    partner_id: int | None,
    external_id: str | None,
    wallet_address: str | None,
    cursor: str | None,
    limit: int,
) -> Page[Member]:
    """Members, optionally by external id or wallet; with `partner_id`, those linked to it."""
    query = select(Member)
    order: Any = Member.id
    if partner_id is not None:
        query = query.join(MemberLink, MemberLink.member_id == Member.id).where(MemberLink.partner_id == partner_id)
        order = MemberLink.member_id  # the same id, in the (partner, member) index's order: no sort
    if external_id is not None:
        query = query.where(Member.external_id == external_id)
    if wallet_address is not None:
        query = query.where(Member.wallet_address == checksum(wallet_address))
    return keyset(uow.session, query, [order], cursor, limit)


_KINDS: dict[int, Literal["earn", "redeem", "expire"]] = {0: "earn", 1: "redeem", 2: "expire"}


def history_page(
    uow: UnitOfWork, member: Member, partner_id: int | None, cursor: str | None, limit: int
) -> Page[HistoryEntry]:
    """A page of the member's history, oldest first: earns and redemptions from the database
    (with `partner_id`, only that partner's), and, for everyone else, expiries from the chain
    (each at its block's time). Ordered by (time, kind, id)."""
    after = decode_cursor(cursor, (datetime, int, int)) if cursor else None
    rows: list[tuple[datetime, int, int, HistoryEntry]] = []
    models: tuple[tuple[int, type[Earn] | type[Redemption]], ...] = ((0, Earn), (1, Redemption))
    for rank, model in models:
        query = _entries_of(model, member).order_by(model.created_at, model.id).limit(limit + 1)
        if partner_id is not None:  # its earns from its campaigns' accounts among them
            query = query.where(model.partner_id.in_(partners.accounts_of(partner_id)))
        if after is not None:
            # the column holds naive UTC: bind the cursor's time the same way, not as a zoned value
            at = after[0].astimezone(UTC).replace(tzinfo=None)
            query = query.where(
                tuple_(model.created_at, literal(rank), model.id) > tuple_(literal(at), after[1], after[2])
            )
        found = cast(list[tuple[Earn | Redemption, ChainWrite | None, int]], uow.session.execute(query).all())
        for row, write, program_id in found:
            rows.append((row.created_at, rank, row.id, _entry(_KINDS[rank], row, write, program_id)))
    if partner_id is None:
        rows += _expiries(uow, member, after)
    rows.sort(key=lambda r: r[:3])
    shown = rows[:limit]
    next_cursor = encode_cursor(shown[-1][:3]) if len(rows) > limit else None
    return Page([entry for *_, entry in shown], next_cursor)


def recent(uow: UnitOfWork, member: Member, limit: int) -> list[HistoryEntry]:
    """The member's last `limit` entries, newest first (what a wallet shows first; `history_page`
    pages the whole history oldest first)."""
    rows: list[tuple[datetime, int, int, HistoryEntry]] = []
    for rank, model in ((0, Earn), (1, Redemption)):
        query = _entries_of(model, member).order_by(model.created_at.desc(), model.id.desc()).limit(limit)
        for row, write, program_id in cast(
            list[tuple[Earn | Redemption, ChainWrite | None, int]], uow.session.execute(query).all()
        ):
            rows.append(
                (row.created_at.replace(tzinfo=UTC), rank, row.id, _entry(_KINDS[rank], row, write, program_id))
            )
    rows += _expiries(uow, member, None)
    rows.sort(key=lambda r: r[:3], reverse=True)
    return [entry for *_, entry in rows[:limit]]


def _entries_of(model: type[Earn] | type[Redemption], member: Member) -> Any:
    """The member's earns or redemptions, each with its chain write and its program (an earn's
    is its issuer account's; a redemption's its reward's)."""
    program: Any = (
        select(Partner.program_id).where(Partner.id == Earn.partner_id)
        if model is Earn
        else select(Reward.program_id).where(Reward.id == Redemption.reward_id)
    )
    return (
        select(model, ChainWrite, program.scalar_subquery())
        .outerjoin(ChainWrite, model.write_id == ChainWrite.id)
        .where(model.member_id == member.id)
    )


def _entry(
    kind: Literal["earn", "redeem", "expire"], row: Earn | Redemption, write: ChainWrite | None, program_id: int
) -> HistoryEntry:
    return HistoryEntry(
        kind=kind,
        id=row.id,
        amount_points=row.amount_points,
        status=row.status,
        partner_id=row.partner_id,
        program_id=program_id,
        tx_hash=write.tx_hash if write else None,
        block_number=write.block_number if write else None,
        created_at=row.created_at,
    )


def _expiries(
    uow: UnitOfWork, member: Member, after: tuple[Any, ...] | None
) -> list[tuple[datetime, int, int, HistoryEntry]]:
    """The member's `Expired` events after `after`, keyed like the database rows: (the block's
    time, 2, block number * 2^20 + position)."""
    events = uow.token.expired_events(member.wallet_address)
    times = uow.chain.blocks(sorted({int(e["block_number"]) for e in events}))
    found = []
    for position, event in enumerate(events):
        block = times[int(event["block_number"])]
        at = datetime.fromtimestamp(block.timestamp if block else 0, UTC)
        key = (at, 2, int(event["block_number"]) * 2**20 + position)
        if after is None or key > after:
            entry = HistoryEntry(
                kind="expire",
                id=None,
                amount_points=int(event["amount_points"]),
                status="confirmed",
                partner_id=None,
                program_id=DEFAULT_PROGRAM,  # swept on the first program's token (`OutboxWriter._sweep`)
                tx_hash=str(event["tx_hash"]),
                block_number=int(event["block_number"]),
                created_at=at,
            )
            found.append((*key, entry))
    return found
