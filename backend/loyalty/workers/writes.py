"""What every outbox write needs: the sender's next nonces, and the write recorded (signed,
with its nonce) before it is broadcast."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.chain.client import ChainClient, SignedTx
from loyalty.db.models import ChainWrite, WriteKind, WriteStatus


class Nonces:
    """A sender's next nonces for one pass: from the chain's count of its mined transactions,
    skipping nonces of its writes still live (sent, or final), reusing those of dropped ones."""

    def __init__(self, chain: ChainClient, sender: str) -> None:
        self.chain, self.sender = chain, sender
        self._floor: int | None = None
        self._taken: set[int] = set()

    def next(self, session: Session) -> int:
        if self._floor is None:
            self._floor = self.chain.account_nonce(self.sender)
        live = set(
            session.scalars(
                select(ChainWrite.nonce).where(
                    ChainWrite.sender == self.sender,
                    ChainWrite.nonce >= self._floor,
                    ChainWrite.status != WriteStatus.DROPPED,
                )
            )
        )
        nonce = self._floor
        while nonce in live or nonce in self._taken:
            nonce += 1
        self._taken.add(nonce)
        return nonce

    def release(self, nonce: int) -> None:
        """A nonce handed out but not recorded after all: free for the next write."""
        self._taken.discard(nonce)


def record(
    session: Session,
    partner_id: int | None,
    sender: str,
    kind: WriteKind,
    nonce: int,
    signed: SignedTx,
    ref: int | None = None,
) -> ChainWrite:
    write = ChainWrite(
        partner_id=partner_id,
        sender=sender,
        kind=kind,
        ref=ref,
        nonce=nonce,
        tx_hash=signed.tx_hash,
        raw_tx=signed.raw,
    )
    session.add(write)
    session.flush()
    return write


def live_write(session: Session, kind: WriteKind, *, program_id: int | None = None, ref: int | None = None) -> bool:
    """Whether a program's deployment is sent or final, or a write for an agreement's row is
    sent: read under the write lock, so a second writer never sends what the first just did."""
    query = select(ChainWrite.id).where(ChainWrite.kind == kind)
    if program_id is not None:
        query = query.where(
            ChainWrite.program_id == program_id, ChainWrite.status.in_((WriteStatus.SENT, WriteStatus.CONFIRMED))
        )
    else:
        query = query.where(ChainWrite.ref == ref, ChainWrite.status == WriteStatus.SENT)
    return session.scalar(query.limit(1)) is not None
