"""Exchanges of points between programs under registered agreements: quotes first."""

from __future__ import annotations

from fastapi import APIRouter

from loyalty.api.deps import CatalogReader, UowDep
from loyalty.api.schemas import QuotePublic, QuoteRequest
from loyalty.services import agreements

router = APIRouter(prefix="/v1/exchanges", tags=["exchanges"])


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
