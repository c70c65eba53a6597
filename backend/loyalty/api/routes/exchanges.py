"""Exchanges of points between programs under registered agreements: quote first, then the
member's consent, as for redemptions (custodial: the member's approval or one-time code;
self-custody: its signature over a consent). The outbox relays them in batches; each is
`reserved`, then `confirmed` (burned and minted in one transaction) or `voided`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import CatalogReader, Reader, UowDep, Writer
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    MAX_INT,
    CursorQuery,
    ExchangeBatchAccepted,
    ExchangeBatchCreate,
    ExchangeBatchResult,
    ExchangeConsentCreate,
    ExchangeConsentQuote,
    ExchangeCreate,
    ExchangePublic,
    IdPath,
    ItemProblem,
    Limit,
    Page,
    QuotePublic,
    QuoteRequest,
    on_chain,
)
from loyalty.db.models import ChainWrite, Exchange, ExchangeStatus
from loyalty.domain.consent import for_ethers, for_wallets
from loyalty.errors import DomainError
from loyalty.services import agreements, exchanges, members
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/exchanges", tags=["exchanges"])


def public(uow: UnitOfWork, row: Exchange) -> ExchangePublic:
    write = uow.session.get(ChainWrite, row.write_id) if row.write_id else None
    return ExchangePublic(
        id=row.id, agreement_id=row.agreement_id, source_program_id=row.source_program_id,
        target_program_id=row.target_program_id, member_id=row.member_id, partner_id=row.partner_id,
        amount_in=row.amount_in, amount_out=row.amount_out, status=ExchangeStatus(row.status), ref=row.ref,
        **on_chain(write), error=row.error, created_at=row.created_at,
    )  # fmt: skip


def chain_view(uow: UnitOfWork, wanted: list[tuple[int, int]], partner_id: int | None) -> exchanges.ChainView:
    """The chain as exchanges of (agreement, member) pairs need it, read before the write lock
    (so requests do not queue behind each other's JSON-RPC calls). Pairs that are not valid are
    skipped here: they are refused under the lock with their problem."""
    view = exchanges.ChainView(uow)
    found = []
    for agreement_id, member_id in wanted:
        try:
            found.append((exchanges.route(uow, agreement_id, None), members.get(uow, member_id, partner_id)))
        except DomainError:
            continue
    view.prefetch(found)
    uow.session.rollback()  # the write transaction starts afresh under the lock
    return view


def consent_public(uow: UnitOfWork, row: Exchange, typed: dict[str, object]) -> ExchangeConsentQuote:
    assert row.deadline is not None
    return ExchangeConsentQuote(
        typed_data=for_wallets(typed), ethers=for_ethers(typed), deadline=row.deadline, exchange_id=row.id,
        amount_out=row.amount_out,
    )  # fmt: skip


@router.post("/quote", response_model=QuotePublic)
def quote_exchange(body: QuoteRequest, uow: UowDep, _: CatalogReader) -> QuotePublic:
    """What an exchange under a registered agreement would give, before anything is signed
    (a read: no Idempotency-Key needed). Amounts the agreement does not take are `422
    exchange_amount_invalid` with the exchange's reason. Anyone signed in may quote: a
    registered agreement's terms are public on the chain."""
    row, amount_out, owed = agreements.quote(uow, body.agreement_id, body.amount_in)
    return QuotePublic(
        agreement_id=row.id, source_program_id=row.source_program_id, target_program_id=row.target_program_id,
        amount_in=body.amount_in, amount_out=amount_out, owed=owed,
    )  # fmt: skip


@router.post("/consents", status_code=201, response_model=ExchangeConsentQuote)
def create_consent(
    body: ExchangeConsentCreate, request: Request, uow: UowDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """The EIP-712 consent a self-custody member signs to exchange: a `Redeem` on the source
    token naming the exchange as issuer and the agreement as `rewardId`. Valid for an hour,
    works once; send the signature and deadline to POST /v1/exchanges."""

    def write() -> tuple[int, ExchangeConsentQuote]:
        member = members.get(uow, body.member_id, principal.partner_id)
        row, typed = exchanges.quote(uow, member, body.agreement_id, body.amount_in, principal.partner_id)
        return 201, consent_public(uow, row, typed)

    return idempotent(request, digest, uow.session, principal, write)


@router.post("", status_code=201, response_model=ExchangePublic)
def create_exchange(
    body: ExchangeCreate, request: Request, uow: UowDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """Exchange a member's points under an agreement the calling partner is a party to.
    Self-custody: the member's signed consent (`signature`, `deadline`), reserved at once.
    Custodial: the member's `redemption_code` for this partner, reserved at once; or nothing,
    and it awaits the member's approval (`awaiting_member`). Limits the chain would refuse
    (the agreement's caps and credit limit, an overdue payer, the target's incoming budget)
    are refused here with the chain's figures."""

    view = chain_view(uow, [(body.agreement_id, body.member_id)], principal.partner_id)

    def write() -> tuple[int, ExchangePublic]:
        return 201, public(uow, _request(uow, body, principal.partner_id, view))

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/batch", status_code=201, response_model=ExchangeBatchAccepted)
def create_exchanges(
    body: ExchangeBatchCreate, request: Request, uow: UowDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """Up to 1,000 members' exchanges in one request, each as POST /v1/exchanges takes it (a
    custodial member's code, a self-custody member's signature, or nothing to await its
    approval). Each stands alone: one refused (its `problem`, as a single request would have
    answered) takes nothing from the others. Naming a member not linked to the partner, or an
    agreement it is no party to, refuses the whole request (`404`)."""
    view = chain_view(uow, [(i.agreement_id, i.member_id) for i in body.exchanges], principal.partner_id)

    def write() -> tuple[int, ExchangeBatchAccepted]:
        if principal.partner_id is None:  # the admin: one by one
            done: list[Exchange | DomainError] = []
            for item in body.exchanges:
                try:
                    with uow.session.begin_nested():
                        done.append(_request(uow, item, None, view))
                except DomainError as refused:
                    done.append(refused)
        else:
            asked = [_asked(item) for item in body.exchanges]
            done = exchanges.request_many(uow, asked, principal.partner_id, view)
        results = [
            ExchangeBatchResult(
                problem=ItemProblem(code=r.code.value, status=r.status, detail=r.detail)
            ) if isinstance(r, DomainError) else ExchangeBatchResult(exchange=public(uow, r))
            for r in done
        ]  # fmt: skip
        return 201, ExchangeBatchAccepted(results=results)

    return idempotent(request, digest, uow.session, principal, write)


def _asked(item: ExchangeCreate) -> exchanges.Asked:
    signature = None if item.signature is None else bytes.fromhex(item.signature[2:])
    return exchanges.Asked(
        item.member_id, item.agreement_id, item.amount_in, item.redemption_code, signature, item.deadline
    )


def _request(uow: UnitOfWork, body: ExchangeCreate, partner_id: int | None, view: exchanges.ChainView) -> Exchange:
    member = members.get(uow, body.member_id, partner_id)
    signature = None if body.signature is None else bytes.fromhex(body.signature[2:])
    return exchanges.request(
        uow, member, body.agreement_id, body.amount_in, partner_id=partner_id, signature=signature,
        deadline=body.deadline, code=body.redemption_code, view=view,
    )  # fmt: skip


@router.get("", response_model=Page[ExchangePublic])
def list_exchanges(
    uow: UowDep,
    principal: Reader,
    member_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    status: ExchangeStatus | None = None,
    limit: Limit = 100,
    cursor: CursorQuery = None,
) -> Page[ExchangePublic]:
    """Exchanges, oldest first; a partner sees those it relayed or is a party to."""
    page = exchanges.page(
        uow, partner_id=principal.partner_id, member_id=member_id, status=status, cursor=cursor, limit=limit
    )
    return Page(data=[public(uow, r) for r in page.rows], next_cursor=page.next_cursor)


@router.get("/{exchange_id:int}", response_model=ExchangePublic)
def get_exchange(exchange_id: IdPath, uow: UowDep, principal: Reader) -> ExchangePublic:
    return public(uow, exchanges.get(uow, exchange_id, principal.partner_id))
