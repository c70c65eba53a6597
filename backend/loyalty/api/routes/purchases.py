"""Purchases: a partner reports an order, its rules price it, the points stay pending for the
program's pending period and are then minted; refunds take them back (or, once released, make
a debt the member's next awards pay)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from loyalty.api.acceptor import Acceptor, QueuedPurchase, grouped
from loyalty.api.deps import Partnered, Reader, UowDep
from loyalty.api.idempotency import Digest, idempotency_key
from loyalty.api.schemas import (
    MAX_INT,
    AwardPublic,
    CursorQuery,
    Limit,
    Page,
    ProgramQuery,
    PurchaseCreate,
    PurchasePublic,
    RefundCreate,
    RefundPublic,
)
from loyalty.db.models import Purchase, Refund
from loyalty.domain.earning.context import Line
from loyalty.domain.earning.refunds import RefundLine
from loyalty.services import partners, purchases
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/purchases", tags=["purchases"])
OrderId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^/\x00-\x1f\x7f]+$")]


def public(uow: UnitOfWork, purchase: Purchase) -> PurchasePublic:
    return _public(
        {column: getattr(purchase, column) for column in _SHOWN},
        [
            {field: getattr(a, field) for field in AwardPublic.model_fields}
            for a in purchases.awards_of(uow.session, purchase.id)
        ],
        partners.placed(uow.session, purchase.partner_id)[0],
    )


_SHOWN = (
    "id",
    "program_id",
    "member_id",
    "order_id",
    "occurred_at",
    "currency",
    "status",
    "pending_until",
    "released_at",
    "earn_id",
)


def _public(purchase: Mapping[str, Any], awards: Sequence[Mapping[str, Any]], brand_id: int) -> PurchasePublic:
    """A purchase as the API shows it: the brand's (`partner_id`), whichever of its issuer
    accounts priced it (the one in `program_id`)."""
    shown = [AwardPublic.model_construct(**{field: a[field] for field in AwardPublic.model_fields}) for a in awards]
    return PurchasePublic.model_construct(
        **{column: purchase[column] for column in _SHOWN},
        partner_id=brand_id,
        awards=shown,
        total_points=sum(a.points for a in shown),
    )


@router.post("", status_code=202, response_model=PurchasePublic)
async def record_purchase(body: PurchaseCreate, request: Request, principal: Partnered, digest: Digest) -> JSONResponse:
    """Report an order of a linked member: the partner's active rules, the member's tier and
    the partner's running campaigns price its net paid item lines; the points stay `pending`
    until `pending_until` (the program's pending period after `occurred_at`), then are minted.
    Accepted (202): the chain has nothing yet. Orders arriving together are recorded together
    (one transaction, one read and one write of each kind of row), each as if alone."""
    assert principal.partner_id is not None
    brand_id = principal.partner_id
    order = purchases.Order(
        partner_id=brand_id,
        member_id=body.member_id,
        order_id=body.order_id,
        occurred_at=body.occurred_at,
        currency=body.currency,
        lines=[Line(**line.model_dump()) for line in body.lines],
        program_id=body.program_id or partners.FIRST_PROGRAM,
    )
    acceptor: Acceptor = request.app.state.acceptor
    return await acceptor.accept(
        QueuedPurchase(
            principal, idempotency_key(request), digest, order, lambda r: _public(r.purchase, r.awards, brand_id)
        )
    )


@router.get("", response_model=Page[PurchasePublic])
def list_purchases(
    uow: UowDep,
    principal: Reader,
    member_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    partner_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    program_id: ProgramQuery = None,
    limit: Limit = 100,
    cursor: CursorQuery = None,
) -> Page[PurchasePublic]:
    """Purchases, oldest first: a partner's own (in every program it issues in, or in
    `program_id`); the admin's and auditors' of every partner."""
    owner = principal.partner_id if principal.role == "partner" else partner_id
    page = purchases.page_purchases(
        uow, partner_id=owner, member_id=member_id, program_id=program_id, cursor=cursor, limit=limit
    )
    return Page(data=[public(uow, p) for p in page.rows], next_cursor=page.next_cursor)


@router.get("/{order_id}", response_model=PurchasePublic)
def get_purchase(
    order_id: OrderId, uow: UowDep, principal: Partnered, program_id: ProgramQuery = None
) -> PurchasePublic:
    """The partner's order, in the program it earned in (default: the first)."""
    assert principal.partner_id is not None
    return public(uow, purchases.get(uow, partners.account_in(uow, principal.partner_id, program_id).id, order_id))


@router.post("/{order_id}/refunds", status_code=201, response_model=RefundPublic)
async def refund_purchase(
    order_id: OrderId, body: RefundCreate, request: Request, principal: Partnered, digest: Digest
) -> JSONResponse:
    """Refund an order, whole or by lines. Inside its pending period the points taken back are
    never minted; after it they become the member's debt, paid from its next awards (never
    burned without the member)."""
    assert principal.partner_id is not None
    brand_id = principal.partner_id

    def write(uow: UnitOfWork) -> tuple[int, RefundPublic]:
        lines = None if body.lines is None else [RefundLine(item.sku, item.quantity) for item in body.lines]
        account = partners.account_in(uow, brand_id, body.program_id)
        made = purchases.refund(uow, account.id, order_id, body.refund_id, lines)
        return 201, _refund_public(made, order_id)

    return await grouped(request, principal, digest, write)


def _refund_public(refund: Refund, order_id: str) -> RefundPublic:
    return RefundPublic(
        id=refund.id,
        refund_id=refund.refund_id,
        order_id=order_id,
        points_reversed=refund.points_reversed,
        debt_points=refund.debt_points,
        created_at=refund.created_at,
    )
