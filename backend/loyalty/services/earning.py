"""Earning: accepted into the outbox at once, confirmed when the chain has it.

A partner's budget counts its earns not yet on-chain as pending, so nothing is promised twice:
`accept` reserves, `confirm` and `fail` release (the reserve → post | void pattern)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, insert, select, update
from sqlalchemy.orm import Session

from loyalty.db.models import ChainWrite, Earn, EarnStatus, MemberLink, Partner, utcnow
from loyalty.domain.earning import EarnRequest, admit
from loyalty.errors import DomainError, ErrorCode, NotFoundError
from loyalty.services import partners, webhooks
from loyalty.services.lists import Page, keyset
from loyalty.services.uow import UnitOfWork


def accept(uow: UnitOfWork, requests: Sequence[EarnRequest]) -> list[list[int] | DomainError]:
    """Put the earns of several requests in the outbox; each request is accepted or refused whole.

    The answer for each is its earn ids, or why it was refused (`domain.earning.admit`).
    Refused requests write nothing. The budgets are read under a row lock and written back in
    the same transaction; the budget and pending columns are only ever written under
    `write_lock`, which SQLite needs since it ignores FOR UPDATE.
    """
    session = uow.session
    member_ids = {item.member_id for request in requests for item in request.items}
    partner_ids = {request.partner_id for request in requests}
    linked: dict[int, set[int]] = {}
    for member_id, partner_id in session.execute(
        select(MemberLink.member_id, MemberLink.partner_id).where(
            MemberLink.member_id.in_(member_ids), MemberLink.partner_id.in_(partner_ids)
        )
    ):
        linked.setdefault(partner_id, set()).add(member_id)
    budgets = session.execute(
        select(Partner.id, Partner.budget_points - Partner.pending_points)
        .where(Partner.id.in_({request.issuer_id for request in requests}))
        .order_by(Partner.id)
        .with_for_update(key_share=True)
    )
    refusals = admit(requests, linked, {partner_id: int(points) for partner_id, points in budgets})
    reserved: dict[int, int] = {}
    rows = []
    for request, refusal in zip(requests, refusals, strict=True):
        if refusal is None:
            reserved[request.issuer_id] = reserved.get(request.issuer_id, 0) + request.total_points
            rows += [
                {
                    "partner_id": request.issuer_id,
                    "member_id": item.member_id,
                    "amount_points": item.amount_points,
                    "reason": item.reason,
                    "status": EarnStatus.PENDING,
                }
                for item in request.items
            ]
    for partner_id, total in reserved.items():
        session.execute(
            update(Partner)
            .where(Partner.id == partner_id)
            .values(pending_points=Partner.pending_points + total)
            .execution_options(synchronize_session=False)
        )
    ids = iter(session.scalars(insert(Earn).returning(Earn.id, sort_by_parameter_order=True), rows) if rows else [])
    return [
        refusal if refusal is not None else [next(ids) for _ in request.items]
        for request, refusal in zip(requests, refusals, strict=True)
    ]


def get(uow: UnitOfWork, earn_id: int, partner_id: int | None) -> Earn:
    """An earn; with `partner_id`, only one of that partner's (others are as if absent)."""
    earn = uow.session.get(Earn, earn_id)
    if earn is None or (
        partner_id is not None
        and earn.partner_id != partner_id
        and earn.partner_id not in set(uow.session.scalars(partners.accounts_of(partner_id)))
    ):
        raise NotFoundError(ErrorCode.EARN_NOT_FOUND, f"no earn {earn_id}")
    return earn


def confirm(session: Session, write_id: int, partner_id: int | None, budget: int | None) -> None:
    """The batch `write_id` is final on-chain: its earns are confirmed and leave the pending
    count. `budget` is the on-chain budget read after the receipts, when there is one."""
    confirmed = session.execute(
        update(Earn)
        .where(Earn.write_id == write_id, Earn.status == EarnStatus.PENDING)
        .values(status=EarnStatus.CONFIRMED, confirmed_at=utcnow(), batch_limit=None)
        .returning(Earn.id, Earn.member_id, Earn.partner_id, Earn.amount_points, Earn.reason)
    ).all()
    release_pending(session, partner_id, sum(row.amount_points for row in confirmed), budget)
    if confirmed:
        write = session.get(ChainWrite, write_id)
        mined = {"tx_hash": write.tx_hash if write else None, "block_number": write.block_number if write else None}
        webhooks.emit(
            session,
            "earn.confirmed",
            [
                webhooks.Happened(f"earn:{row.id}", row.partner_id, row.member_id,
                                  {"earn_id": row.id, "member_id": row.member_id, "amount_points": row.amount_points,
                                   "reason": row.reason, **mined})
                for row in confirmed
            ],
        )  # fmt: skip


def fail(session: Session, partner_id: int | None, earn_ids: Sequence[int], error: str) -> int:
    """These earns will never be on-chain: failed, and no longer held against the budget.
    Returns how many were still pending."""
    if not earn_ids:
        return 0
    failed = list(
        session.execute(
            update(Earn)
            .where(Earn.id.in_(earn_ids), Earn.status == EarnStatus.PENDING)
            .values(status=EarnStatus.FAILED, error=error)
            .returning(Earn.amount_points)
        ).scalars()
    )
    release_pending(session, partner_id, sum(failed), None)
    return len(failed)


def release_pending(session: Session, partner_id: int | None, points: int, budget: int | None) -> None:
    """Confirmed or failed earns no longer count against the partner's budget as pending;
    `budget` is the on-chain budget read after the receipts, when there is one."""
    values: dict[str, object] = {"pending_points": Partner.pending_points - points}
    if budget is not None:
        values["budget_points"] = budget
    session.execute(
        update(Partner).where(Partner.id == partner_id).values(**values).execution_options(synchronize_session=False)
    )


def list_earns(
    uow: UnitOfWork,
    *,
    partner_id: int | None,
    member_id: int | None,
    status: EarnStatus | None,
    created_after: datetime | None,
    created_before: datetime | None,
    cursor: str | None,
    limit: int,
) -> Page[tuple[Earn, ChainWrite | None, int]]:
    """Earns with the write that carries each and their program, oldest first; with
    `partner_id`, that partner's (its campaigns' and its other programs' among them)."""
    joined = (
        select(Earn, ChainWrite, Partner.program_id)
        .join(Partner, Partner.id == Earn.partner_id)
        .outerjoin(ChainWrite, Earn.write_id == ChainWrite.id)
    )
    query = cast(Select[Any], joined)
    if partner_id is not None:
        query = query.where(Earn.partner_id.in_(partners.accounts_of(partner_id)))
    for column, value in ((Earn.member_id, member_id), (Earn.status, status)):
        if value is not None:
            query = query.where(column == value)
    if created_after is not None:
        query = query.where(Earn.created_at >= created_after)
    if created_before is not None:
        query = query.where(Earn.created_at < created_before)
    return keyset(uow.session, query, [Earn.id], cursor, limit)
