"""A partner's refs: sequence numbers of its issuer account on the chain (each labels one earn
batch or redemption). Both the API (redemption consents) and the outbox (earn batches) take
them, so a ref is claimed with a conditional UPDATE that only one of them can win."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalty.db.models import Partner


def next_ref(session: Session, partner_id: int) -> int:
    """The partner's next unclaimed ref."""
    return int(session.scalar(select(Partner.next_ref).where(Partner.id == partner_id)) or 1)


def claim_ref(session: Session, partner_id: int, ref: int) -> bool:
    """Claim `ref` (read with `next_ref`) in the current transaction; False if another writer did first."""
    claimed = session.execute(
        update(Partner)
        .where(Partner.id == partner_id, Partner.next_ref == ref)
        .values(next_ref=ref + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


def take_ref(session: Session, partner_id: int) -> int:
    """The next ref, claimed (taking the one after when another writer won the race)."""
    while not claim_ref(session, partner_id, ref := next_ref(session, partner_id)):
        pass
    return ref
