"""The outbox writer: drains accepted earns and reserved redemptions onto the chain.

One writer per partner issuer account. For each partner it
1. settles what it sent before (by receipt), re-broadcasting the very same signed transaction
   when the node has lost it (after a crash or restart);
2. sends reserved redemptions, one `redeem` each, in ref order;
3. packs pending earns into `earnBatch` transactions of up to MAX_BATCH_SIZE members.
Every transaction is signed and committed (with its nonce, ref and rows) before it is broadcast,
so a crash at any point can neither lose an accepted earn nor issue one twice: the stored
transaction is the only one that can carry those rows, and the contract rejects a reused ref.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from loyalty.chain import MAX_BATCH_SIZE, Chain, SignedTx
from loyalty.custody import Custody
from loyalty.db.models import (
    ChainWrite,
    Earn,
    EarnStatus,
    Member,
    Partner,
    Redemption,
    RedemptionStatus,
    Reward,
    WriteKind,
    WriteStatus,
    utcnow,
)
from loyalty.db.session import write_lock
from loyalty.program import claim_ref, next_ref

log = logging.getLogger("loyalty.outbox")
MAX_IN_FLIGHT = 16  # transactions sent and not yet settled, per partner


class Pass(NamedTuple):
    """What one pass did: whether it settled or sent anything, and what is still in flight."""

    progressed: bool
    in_flight: int


@dataclass
class OutboxWriter:
    """Drains the outbox of every partner; `run_once` is one pass, `run` loops until stopped."""

    sessions: sessionmaker[Session]
    chain: Chain
    custody: Custody
    poll_s: float = 0.02

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                progressed = self.run_once().progressed
            except Exception:  # a bad pass must not kill the writer: log it and try again
                log.exception("outbox pass failed")
                progressed = False
            if not progressed:  # nothing new, or only waiting for the chain
                stop.wait(self.poll_s)

    def run_once(self) -> Pass:
        """One pass over all partners."""
        with self.sessions() as session:
            partner_ids = list(session.scalars(select(Partner.id)))
        passes = [self._drain(partner_id) for partner_id in partner_ids]
        return Pass(any(p.progressed for p in passes), sum(p.in_flight for p in passes))

    # ---------------------------------------------------------------------------- one partner
    def _drain(self, partner_id: int) -> Pass:
        with self.sessions() as session:
            partner = session.get(Partner, partner_id)
            assert partner is not None
            issuer = self.custody.open(partner.issuer_address, partner.issuer_key_sealed)
            settled, in_flight = self._settle(session, partner)
            sent = 0
            while in_flight + sent < MAX_IN_FLIGHT and self._send_next(session, partner, issuer, in_flight + sent):
                sent += 1
            if sent:
                self.chain.ensure_gas(partner.issuer_address)  # for the next pass
            return Pass(bool(settled or sent), in_flight + sent)

    def _settle(self, session: Session, partner: Partner) -> tuple[int, int]:
        """Apply receipts of sent transactions; returns how many it settled and how many are still in flight.

        Every RPC happens before the write transaction starts: SQLite has one writer at a time,
        and the API's accepts must not queue behind a round-trip to the node.
        """
        writes = session.scalars(
            select(ChainWrite)
            .where(ChainWrite.partner_id == partner.id, ChainWrite.status == WriteStatus.SENT)
            .order_by(ChainWrite.nonce)
        ).all()
        pending = 0
        outcomes: list[tuple[ChainWrite, int, str | None]] = []
        mined = self.chain.outcomes([write.tx_hash for write in writes])
        for write in writes:
            if (outcome := mined[write.tx_hash]) is None:
                if not self.chain.is_known(write.tx_hash):  # recorded, then lost (crash, node restart)
                    self.chain.broadcast(SignedTx(write.tx_hash, write.raw_tx))
                pending += 1
                continue
            succeeded, block_number = outcome
            error = None if succeeded else str(self.chain.revert_of(write.tx_hash))
            outcomes.append((write, block_number, error))
        if not outcomes:
            return 0, pending
        budget = self.chain.issue_budget(partner.issuer_address)  # read after the receipts: counts them
        with write_lock(session):
            for write, block_number, error in outcomes:
                write.block_number = block_number
                write.status = WriteStatus.CONFIRMED if error is None else WriteStatus.FAILED
                write.error = error
                if error is None:
                    self._confirm(session, write)
                else:
                    self._fail(session, write)
                if write.kind == WriteKind.EARN_BATCH:
                    self._release_pending(session, write, budget)
            session.commit()
        return len(outcomes), pending

    def _confirm(self, session: Session, write: ChainWrite) -> None:
        if write.kind == WriteKind.EARN_BATCH:
            session.execute(
                update(Earn).where(Earn.write_id == write.id).values(status=EarnStatus.CONFIRMED, confirmed_at=utcnow())
            )
        else:
            session.execute(
                update(Redemption)
                .where(Redemption.write_id == write.id)
                .values(status=RedemptionStatus.POSTED, voucher_code=secrets.token_hex(8).upper())
            )

    def _fail(self, session: Session, write: ChainWrite) -> None:
        if write.kind == WriteKind.EARN_BATCH:
            session.execute(
                update(Earn).where(Earn.write_id == write.id).values(status=EarnStatus.FAILED, error=write.error)
            )
            return
        for redemption in session.scalars(select(Redemption).where(Redemption.write_id == write.id)):
            redemption.status = RedemptionStatus.VOIDED
            redemption.error = write.error
            session.execute(update(Reward).where(Reward.id == redemption.reward_id).values(stock=Reward.stock + 1))

    def _release_pending(self, session: Session, write: ChainWrite, budget: int) -> None:
        """A settled batch no longer counts as pending; `budget` is the on-chain budget read just now."""
        settled = session.scalar(select(func.sum(Earn.amount_points)).where(Earn.write_id == write.id)) or 0
        session.execute(
            update(Partner)
            .where(Partner.id == write.partner_id)
            .values(pending_points=Partner.pending_points - int(settled), budget_points=budget)
            .execution_options(synchronize_session=False)
        )

    def _send_next(self, session: Session, partner: Partner, issuer: object, in_flight: int) -> bool:
        """Sign, record and broadcast the next transaction; returns whether there was one.

        A batch of fewer than MAX_BATCH_SIZE earns goes only when nothing else is in flight: while
        the chain is busy, earns keep gathering into fuller (cheaper per earn) batches."""
        redemption = session.scalar(
            select(Redemption)
            .where(
                Redemption.partner_id == partner.id,
                Redemption.status == RedemptionStatus.RESERVED,
                Redemption.write_id.is_(None),
            )
            .order_by(Redemption.ref)
            .limit(1)
        )
        if redemption is not None:
            nonce = self._next_nonce(session, partner)
            member = session.get(Member, redemption.member_id)
            assert member is not None
            signed = self.chain.sign_redeem(
                issuer,  # type: ignore[arg-type]
                nonce,
                member=member.wallet_address,
                amount_points=redemption.amount_points,
                reward_id=redemption.reward_id,
                ref=redemption.ref,
                deadline=redemption.deadline,
                signature=redemption.signature,
            )
            with write_lock(session):
                write = self._record(session, partner, WriteKind.REDEEM, redemption.ref, nonce, signed)
                redemption.write_id = write.id
                session.commit()  # recorded before it is broadcast: see the module docstring
        else:
            earns = session.execute(
                select(Earn.id, Member.wallet_address, Earn.amount_points)
                .join(Member, Member.id == Earn.member_id)
                .where(Earn.partner_id == partner.id, Earn.status == EarnStatus.PENDING, Earn.write_id.is_(None))
                .order_by(Earn.id)
                .limit(MAX_BATCH_SIZE)
            ).all()
            if not earns or (len(earns) < MAX_BATCH_SIZE and in_flight):
                return False
            nonce = self._next_nonce(session, partner)
            ref = next_ref(session, partner.id)
            wallets = [wallet for _, wallet, _ in earns]
            signed = self.chain.sign_earn_batch(issuer, nonce, wallets, [amount for _, _, amount in earns], ref)  # type: ignore[arg-type]
            # Claim the ref only now, so the write transaction does not span the signing; if the
            # API handed it to a redemption consent meanwhile, try again next pass.
            with write_lock(session):
                if not claim_ref(session, partner.id, ref):
                    session.rollback()
                    return True
                write = self._record(session, partner, WriteKind.EARN_BATCH, ref, nonce, signed)
                session.execute(
                    update(Earn)
                    .where(Earn.id.in_([earn_id for earn_id, _, _ in earns]))
                    .values(write_id=write.id)
                    .execution_options(synchronize_session=False)
                )
                session.commit()  # recorded before it is broadcast: see the module docstring
        self.chain.broadcast(signed)
        return True

    def _record(
        self, session: Session, partner: Partner, kind: WriteKind, ref: int, nonce: int, signed: SignedTx
    ) -> ChainWrite:
        write = ChainWrite(
            partner_id=partner.id, kind=kind, ref=ref, nonce=nonce, tx_hash=signed.tx_hash, raw_tx=signed.raw
        )
        session.add(write)
        session.flush()
        return write

    def _next_nonce(self, session: Session, partner: Partner) -> int:
        last = session.scalar(
            select(ChainWrite.nonce)
            .where(ChainWrite.partner_id == partner.id)
            .order_by(ChainWrite.nonce.desc())
            .limit(1)
        )
        # Only this writer sends from the issuer account, so its own record is the truth once it
        # has one; before that, ask the chain.
        return last + 1 if last is not None else self.chain.account_nonce(partner.issuer_address)


def run_writer(writer: OutboxWriter, stop: threading.Event, name: str = "outbox-writer") -> threading.Thread:
    """Start the writer in a daemon thread."""
    thread = threading.Thread(target=writer.run, args=(stop,), name=name, daemon=True)
    thread.start()
    return thread


def drain(writer: OutboxWriter, timeout_s: float = 60) -> None:
    """Run passes until nothing is left to do (tests, CLI one-shot)."""
    deadline = time.monotonic() + timeout_s
    while (done := writer.run_once()).progressed or done.in_flight:
        if time.monotonic() > deadline:
            raise TimeoutError("the outbox did not drain in time")
        time.sleep(writer.poll_s)
