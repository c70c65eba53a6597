"""Settlement between brands on the exchange: each period's debts, net positions and (once
closed) payments, read from the chain; closing a period (anyone, once it ended), paying a
payment (its debtor, in the settlement token) or confirming one paid off-chain (its creditor),
each sent by the outbox and followed as a settlement step."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Partnered, Principal, Reader, RuntimeDep, UowDep, Writer
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    MAX_INT,
    CursorQuery,
    DebtPublic,
    IdPath,
    Limit,
    Page,
    PaymentPublic,
    PeriodPublic,
    SettlementOverview,
    SettlementStepPublic,
    on_chain,
)
from loyalty.db.models import ChainWrite, Settlement, SettlementAction, SettlementStatus
from loyalty.runtime import Runtime
from loyalty.services import settlement
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/settlement", tags=["settlement"])
PeriodPath = Annotated[int, Path(ge=0, le=MAX_INT, description="the period's number on the exchange")]
IndexPath = Annotated[int, Path(ge=0, le=10_000, description="the payment's index in its period")]


def step_public(uow: UnitOfWork, step: Settlement) -> SettlementStepPublic:
    write = uow.session.get(ChainWrite, step.write_id) if step.write_id else None
    return SettlementStepPublic(
        id=step.id, period=step.period,
        payment_index=None if step.action == SettlementAction.CLOSE else step.payment_index,
        action=SettlementAction(step.action), partner_id=step.partner_id, status=SettlementStatus(step.status),
        **on_chain(write), error=step.error, created_at=step.created_at,
    )  # fmt: skip


@router.get("", response_model=SettlementOverview)
def overview(runtime: RuntimeDep, _: Reader) -> SettlementOverview:
    """The exchange, its settlement token, the current period and the next one to close."""
    exchange = runtime.exchange()
    return SettlementOverview(
        exchange_address=exchange.address, settlement_token=exchange.settlement_token(),
        current_period=exchange.current_period(), next_period_to_close=exchange.next_period_to_close(),
    )  # fmt: skip


@router.get("/periods/{period}", response_model=PeriodPublic)
def get_period(period: PeriodPath, uow: UowDep, runtime: RuntimeDep, _: Reader) -> PeriodPublic:
    """A period from the chain: what each payer owes each payee, the net positions (summing to
    zero), and once closed the payments that settle them (at most one fewer than the brands)."""
    found = settlement.period(uow, runtime.exchange(), period)
    return PeriodPublic(
        period=found.period, ends_at=found.ends_at, due_at=found.due_at, closed=found.closed,
        debts=[
            DebtPublic(
                payer_id=settlement.partner_of(uow, d.payer), payee_id=settlement.partner_of(uow, d.payee),
                payer=d.payer, payee=d.payee, amount=str(d.amount),
            )
            for d in found.debts
        ],
        net={brand: str(amount) for brand, amount in found.net.items()},
        payments=[
            PaymentPublic(
                index=p.index, debtor_id=settlement.partner_of(uow, p.debtor),
                creditor_id=settlement.partner_of(uow, p.creditor), debtor=p.debtor, creditor=p.creditor,
                amount=str(p.amount), settled=p.settled,
            )
            for p in found.payments
        ],
    )  # fmt: skip


@router.post("/periods/{period}/close", status_code=202, response_model=SettlementStepPublic)
def close_period(
    period: PeriodPath, request: Request, uow: UowDep, runtime: RuntimeDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """Close an ended period (periods close in order; the outbox sends it once those before
    are closed). Anyone may: closing only nets what the chain recorded."""

    def write() -> tuple[int, SettlementStepPublic]:
        step = settlement.ask(uow, runtime.exchange(), period, SettlementAction.CLOSE, principal.partner_id)
        return 202, step_public(uow, step)

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/periods/{period}/payments/{index}/pay", status_code=202, response_model=SettlementStepPublic)
def pay_payment(
    period: PeriodPath,
    index: IndexPath,
    request: Request,
    uow: UowDep,
    runtime: RuntimeDep,
    principal: Partnered,
    digest: Digest,
) -> JSONResponse:
    """Pay a payment the calling brand owes, from its account in the settlement token (the
    outbox approves the exchange to take it first, once): the account must hold the tokens."""
    return _payment_step(period, index, SettlementAction.PAY, request, uow, runtime, principal, digest)


@router.post("/periods/{period}/payments/{index}/confirm", status_code=202, response_model=SettlementStepPublic)
def confirm_payment(
    period: PeriodPath,
    index: IndexPath,
    request: Request,
    uow: UowDep,
    runtime: RuntimeDep,
    principal: Partnered,
    digest: Digest,
) -> JSONResponse:
    """Confirm, as the payment's creditor, that it was paid off-chain: its debtor is not overdue then."""
    return _payment_step(period, index, SettlementAction.CONFIRM, request, uow, runtime, principal, digest)


def _payment_step(
    period: int,
    index: int,
    action: SettlementAction,
    request: Request,
    uow: UnitOfWork,
    runtime: Runtime,
    principal: Principal,
    digest: str,
) -> JSONResponse:
    def write() -> tuple[int, SettlementStepPublic]:
        found = settlement.ask(uow, runtime.exchange(), period, action, principal.partner_id, index)
        return 202, step_public(uow, found)

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/steps", response_model=Page[SettlementStepPublic])
def list_steps(
    uow: UowDep, principal: Reader, limit: Limit = 100, cursor: CursorQuery = None
) -> Page[SettlementStepPublic]:
    """Settlement steps asked for, oldest first; a partner sees its own."""
    page = settlement.page(uow, principal.partner_id, cursor=cursor, limit=limit)
    return Page(data=[step_public(uow, s) for s in page.rows], next_cursor=page.next_cursor)


@router.get("/steps/{step_id:int}", response_model=SettlementStepPublic)
def get_step(step_id: IdPath, uow: UowDep, principal: Reader) -> SettlementStepPublic:
    return step_public(uow, settlement.get(uow, step_id, principal.partner_id))
