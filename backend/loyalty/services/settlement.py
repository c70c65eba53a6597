"""Settlement between brands, read from the exchange and asked of it: periods (their debts,
net positions and payments, all from the chain), and the steps brands ask the outbox for: a
period closed, a payment paid by its debtor or confirmed by its creditor. The incoming budget
the admin grants a program for points exchanged into it is here too."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalty.chain.exchange import PointsExchange
from loyalty.db.models import (
    Partner,
    Program,
    ProgramStatus,
    RateAgreement,
    Settlement,
    SettlementAction,
    SettlementStatus,
)
from loyalty.domain.exchange import net_positions
from loyalty.errors import ConflictError, ErrorCode, ForbiddenError, NotFoundError, UnprocessableError
from loyalty.services.exchanges import MAX_POINTS
from loyalty.services.lists import Page, keyset
from loyalty.services.purchases import program
from loyalty.services.uow import UnitOfWork


def grant_incoming(uow: UnitOfWork, program_id: int, points: int) -> Program:
    """More points `program_id` takes in through the exchange: the outbox makes the exchange an
    issuer of its token (the first time) and raises its issue budget there by `points`."""
    found = program(uow.session, program_id)
    if found.status != ProgramStatus.ACTIVE or found.token_address is None:
        raise UnprocessableError(ErrorCode.PROGRAM_NOT_ACTIVE, f"program {program_id} has no token deployed yet")
    if found.incoming_budget_points + found.incoming_to_grant_points + points > MAX_POINTS:
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR, f"program {program_id} would take more than {MAX_POINTS} points in"
        )
    uow.session.execute(  # one statement: the outbox moves grants on at the same time
        update(Program)
        .where(Program.id == program_id)
        .values(incoming_to_grant_points=Program.incoming_to_grant_points + points)
        .execution_options(synchronize_session=False)
    )
    uow.session.refresh(found)
    return found


@dataclass(frozen=True)
class Debt:
    payer: str
    payee: str
    amount: int


@dataclass(frozen=True)
class Payment:
    index: int
    debtor: str
    creditor: str
    amount: int
    settled: bool


@dataclass(frozen=True)
class Period:
    """A settlement period as the chain has it."""

    period: int
    ends_at: int
    due_at: int
    closed: bool
    debts: list[Debt]
    net: dict[str, int]
    payments: list[Payment]


def period(uow: UnitOfWork, exchange: PointsExchange, number: int) -> Period:
    """Period `number`: each pair's debt (the pairs of the service's agreements on this
    exchange), the net positions, and once closed its payments."""
    ends_at, due_at, closed = exchange.period_facts(number)
    address_of = {i: a for i, a in uow.session.execute(select(Partner.id, Partner.issuer_address))}
    pairs = uow.session.execute(
        select(RateAgreement.payer_id, RateAgreement.payee_id)
        .where(RateAgreement.exchange_address == exchange.address)
        .distinct()
    ).all()
    debts = []
    for payer, payee in sorted((address_of[p], address_of[q]) for p, q in pairs):
        if amount := exchange.debt_of(number, payer, payee):
            debts.append(Debt(payer, payee, amount))
    payments = [
        Payment(i, debtor, creditor, amount, settled)
        for i, (debtor, settled, creditor, amount) in enumerate(exchange.payments_of(number) if closed else [])
    ]
    net = net_positions({(d.payer, d.payee): d.amount for d in debts})
    return Period(number, ends_at, due_at, closed, debts, net, payments)


def partner_of(uow: UnitOfWork, address: str) -> int | None:
    """The partner whose issuer account is `address` (none: a brand outside the service)."""
    return _addresses(uow.session).get(address.lower())


def _addresses(session: Session) -> dict[str, int]:
    return {a.lower(): i for a, i in session.execute(select(Partner.issuer_address, Partner.id))}


def ask(
    uow: UnitOfWork,
    exchange: PointsExchange,
    number: int,
    action: SettlementAction,
    partner_id: int | None,
    index: int | None = None,
) -> Settlement:
    """Queue a settlement step for the outbox: close period `number` (anyone, once it ended),
    pay payment `index` of it (its debtor) or confirm it was paid off-chain (its creditor)."""
    ends_at, _, closed = exchange.period_facts(number)
    amount = 0
    if action == SettlementAction.CLOSE:
        if closed:
            raise ConflictError(ErrorCode.PERIOD_NOT_CLOSABLE, f"period {number} is closed already")
        if ends_at > uow.chain.head().timestamp:  # the chain's clock decides, as the contract does
            raise ConflictError(ErrorCode.PERIOD_NOT_CLOSABLE, f"period {number} ends at {ends_at}; it can close then")
        if number > (first := exchange.next_period_to_close()):
            raise ConflictError(ErrorCode.PERIOD_NOT_CLOSABLE, f"periods close in order: close period {first} first")
        index = 0
    else:
        assert index is not None
        paying = action == SettlementAction.PAY
        side = RateAgreement.payer_id if paying else RateAgreement.payee_id
        party = uow.session.scalar(
            select(RateAgreement.id)
            .where(RateAgreement.exchange_address == exchange.address, side == partner_id)
            .limit(1)
        )
        if partner_id is None or party is None:
            raise ForbiddenError(
                ErrorCode.FORBIDDEN,
                f"only a brand that is the {'payer' if paying else 'payee'} of an agreement may do this",
            )
        if not closed:
            raise ConflictError(ErrorCode.PERIOD_NOT_CLOSED, f"period {number} is not closed: it has no payments yet")
        payments = exchange.payments_of(number)
        if index >= len(payments):
            raise NotFoundError(ErrorCode.PAYMENT_NOT_FOUND, f"period {number} has no payment {index}")
        debtor, settled, creditor, amount = payments[index]
        if settled:
            raise ConflictError(ErrorCode.PAYMENT_SETTLED, f"payment {index} of period {number} is settled")
        brand = debtor if paying else creditor
        if partner_of(uow, brand) != partner_id:
            who = "debtor" if paying else "creditor"
            raise ForbiddenError(ErrorCode.FORBIDDEN, f"only the payment's {who} ({brand}) may do this")
    asked = uow.session.scalar(
        select(Settlement.id).where(
            Settlement.exchange_address == exchange.address, Settlement.period == number,
            Settlement.payment_index == index, Settlement.action == action,
            Settlement.status.in_((SettlementStatus.QUEUED, SettlementStatus.SENT)),
        ).limit(1)
    )  # fmt: skip
    if asked is not None:
        raise ConflictError(ErrorCode.SETTLEMENT_ASKED, f"settlement step {asked} asks for this already")
    step = Settlement(
        exchange_address=exchange.address, period=number, payment_index=index, action=action,
        partner_id=partner_id, amount=str(amount), status=SettlementStatus.QUEUED,
    )  # fmt: skip
    uow.session.add(step)
    uow.session.flush()
    return step


def close_due(session: Session, exchange_address: str, number: int) -> Settlement | None:
    """Queue the close of an ended period nobody asked to close (the outbox's own step, for
    no partner), unless a close of it is on its way already; the step, or None."""
    asked = session.scalar(
        select(Settlement.id).where(
            Settlement.exchange_address == exchange_address, Settlement.period == number,
            Settlement.action == SettlementAction.CLOSE,
            Settlement.status.in_((SettlementStatus.QUEUED, SettlementStatus.SENT)),
        ).limit(1)
    )  # fmt: skip
    if asked is not None:
        return None
    step = Settlement(
        exchange_address=exchange_address, period=number, payment_index=0, action=SettlementAction.CLOSE,
        partner_id=None, amount="0", status=SettlementStatus.QUEUED,
    )  # fmt: skip
    session.add(step)
    session.flush()
    return step


def get(uow: UnitOfWork, step_id: int, partner_id: int | None) -> Settlement:
    step = uow.session.get(Settlement, step_id)
    if step is None or (partner_id is not None and step.partner_id != partner_id):
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no settlement step {step_id}")
    return step


def page(uow: UnitOfWork, partner_id: int | None, *, cursor: str | None, limit: int) -> Page[Settlement]:
    query = select(Settlement)
    if partner_id is not None:
        query = query.where(Settlement.partner_id == partner_id)
    return keyset(uow.session, query, [Settlement.id], cursor, limit)
