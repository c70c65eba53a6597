"""Members: program-wide identities with a wallet (custodial, or their own)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import func, or_, select

from loyalty.chain.client import checksum, is_zero
from loyalty.db.models import ChainWrite, Earn, Member, Redemption, RedemptionStatus
from loyalty.errors import ConflictError, ErrorCode, NotFoundError, UnprocessableError
from loyalty.services.uow import UnitOfWork


def create(uow: UnitOfWork, external_id: str, wallet_address: str | None) -> Member:
    """Enrol a member: with `wallet_address` they hold their own wallet, without it the service keeps one."""
    session = uow.session
    if session.scalar(select(Member).where(Member.external_id == external_id)) is not None:
        raise ConflictError(ErrorCode.MEMBER_EXISTS, f"a member with external_id {external_id!r} already exists")
    if wallet_address is None:
        address, sealed = uow.custody.new_wallet()
        member = Member(external_id=external_id, wallet_address=address, custodial=True, wallet_key_sealed=sealed)
    else:
        address = checksum(wallet_address)
        _check_wallet(uow, address)
        if session.scalar(select(Member).where(Member.wallet_address == address)) is not None:
            raise ConflictError(ErrorCode.WALLET_TAKEN, f"wallet {address} already belongs to a member")
        member = Member(external_id=external_id, wallet_address=address, custodial=False)
    session.add(member)
    session.flush()
    return member


def _check_wallet(uow: UnitOfWork, address: str) -> None:
    """A member's own wallet must be an account that can hold points and sign consents: not
    the zero address, not the token, not a contract (earning to it would revert or lock the
    points away, and fail every batch it is in)."""
    if is_zero(address) or address.lower() == uow.token.address.lower():
        raise UnprocessableError(ErrorCode.INVALID_WALLET, f"{address} cannot hold points")
    if uow.chain.has_code(address):
        raise UnprocessableError(
            ErrorCode.INVALID_WALLET, f"{address} is a contract, not a wallet that can sign consents"
        )


def get(uow: UnitOfWork, member_id: int) -> Member:
    member = uow.session.get(Member, member_id)
    if member is None:
        raise NotFoundError(ErrorCode.MEMBER_NOT_FOUND, f"no member {member_id}")
    return member


def lock(uow: UnitOfWork, member: Member) -> None:
    """One redemption (or consent) of a member at a time: each counts the ones before it.
    A row lock on PostgreSQL; SQLite's writers take turns anyway (`write_lock`)."""
    uow.session.execute(select(Member.id).where(Member.id == member.id).with_for_update())


def spendable_points(uow: UnitOfWork, member: Member) -> tuple[int, int]:
    """Points the member may still redeem, and the consent nonce the next redemption takes.

    Balance and nonce are read from the chain as of one block. A reserved redemption still
    holds its points until its burn is on-chain: one whose transaction is mined already (its
    nonce is below the chain's) is in the balance, not counted again."""
    block = uow.chain.block_number()
    balance, nonce = uow.token.members_state([member.wallet_address], block)[member.wallet_address]
    held = uow.session.execute(
        select(func.coalesce(func.sum(Redemption.amount_points), 0), func.count()).where(
            Redemption.member_id == member.id,
            Redemption.status == RedemptionStatus.RESERVED,
            or_(Redemption.write_id.is_(None), Redemption.nonce >= nonce),
        )
    ).one()
    return balance - int(held[0]), nonce + int(held[1])


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a member's history.

    Attributes:
        kind: earn, redeem or expire.
        id: the earn's or redemption's id (none for an expiry: the chain did it).
        status: the earn's or redemption's status; `confirmed` for an expiry.
        tx_hash, block_number: where it is on the chain, once it is.
    """

    kind: Literal["earn", "redeem", "expire"]
    id: int | None
    amount_points: int
    status: str
    partner_id: int | None
    tx_hash: str | None
    block_number: int | None
    created_at: datetime | None


def history(uow: UnitOfWork, member: Member) -> list[HistoryEntry]:
    """Earns, redemptions and expiries of a member, oldest first, each with its transaction."""
    entries: list[HistoryEntry] = []
    kinds: tuple[tuple[type[Earn] | type[Redemption], Literal["earn", "redeem"]], ...] = (
        (Earn, "earn"),
        (Redemption, "redeem"),
    )
    for model, kind in kinds:
        query = (
            select(model, ChainWrite)
            .outerjoin(ChainWrite, model.write_id == ChainWrite.id)
            .where(model.member_id == member.id)
        )
        rows = cast(list[tuple[Earn | Redemption, ChainWrite | None]], uow.session.execute(query).all())
        entries += [
            HistoryEntry(
                kind=kind,
                id=row.id,
                amount_points=row.amount_points,
                status=row.status,
                partner_id=row.partner_id,
                tx_hash=write.tx_hash if write else None,
                block_number=write.block_number if write else None,
                created_at=row.created_at,
            )
            for row, write in rows
        ]
    for expired in uow.token.expired_events(member.wallet_address):
        entries.append(
            HistoryEntry(
                kind="expire",
                id=None,
                amount_points=int(expired["amount_points"]),
                status="confirmed",
                partner_id=None,
                tx_hash=str(expired["tx_hash"]),
                block_number=int(expired["block_number"]),
                created_at=None,
            )
        )
    entries.sort(key=lambda e: (e.block_number or 2**62, e.created_at.timestamp() if e.created_at else 0))
    return entries
