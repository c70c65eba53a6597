"""The outbox writer: the one process that sends transactions, draining what the API accepted.

It holds the database's writer lease (`loyalty.workers.lease`): any number of writers may run, one
writes. Each pass it
1. checks that writes it counted as final are still on the chain (a reorg, or a dev chain
   rolled back to its last dump, puts them back to `sent`);
2. finalizes sent transactions by receipt once they are `confirmations` blocks deep, re-sends the
   very same signed transaction when the node has lost it, and drops one whose nonce went to
   another transaction (its rows go back to the queue: it can never be mined);
3. does the operator's jobs: sets up new partners' issuer accounts (gas, role, budget), tops up
   their gas, sweeps expired points;
4. for each partner, sends reserved redemptions (after checking the member's nonce, balance and
   the consent's deadline on-chain) and packs pending earns into `earnBatch` transactions.

Every transaction is signed and committed with its nonce, ref and rows before it is broadcast,
and rows are claimed by conditional updates, so neither a crash nor a second writer can lose an
accepted earn or issue one twice. A row that cannot be sent never holds up the others: a batch
that reverts because of one member fails that member's earn and re-queues the rest; a batch
that fails for no named reason is halved until the bad earn stands alone; a redemption the chain
would refuse is voided with the reason, before any gas is spent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple, TypeVar

from eth_account.signers.local import LocalAccount
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from loyalty.audit.leaderboard import Tallies
from loyalty.chain.client import Block, Receipt, SignedTx
from loyalty.chain.exchange import PointsExchange
from loyalty.chain.token import ISSUER_GAS_TOPUP_WEI, LoyaltyToken, sign_deploy_token
from loyalty.db.models import (
    AgreementStatus,
    ChainWrite,
    Earn,
    EarnStatus,
    Exchange,
    ExchangeStatus,
    ExpirySweep,
    IdempotencyRecord,
    Member,
    MemberToken,
    Partner,
    PartnerKind,
    Program,
    ProgramStatus,
    RateAgreement,
    Redemption,
    RedemptionStatus,
    Reward,
    Settlement,
    SettlementAction,
    SettlementStatus,
    SignInNonce,
    WriteKind,
    WriteStatus,
    utcnow,
)
from loyalty.db.session import write_lock
from loyalty.domain.consent import RedeemConsent, redeem_typed_data, sign_typed_data
from loyalty.errors import (
    ChainRevertError,
    ChainUnavailableError,
    KeyDecryptionError,
    NotLeaseHolderError,
    RpcError,
    TxRefusedError,
)
from loyalty.runtime import Runtime
from loyalty.services import (
    agreements,
    challenges,
    credentials,
    earning,
    exchanges,
    leaderboards,
    programs,
    purchases,
    redemptions,
    tiers,
)
from loyalty.services.redemptions import CONSENT_VALIDITY_S
from loyalty.services.refs import claim_ref, next_ref
from loyalty.workers import exchanging
from loyalty.workers import lease as leases
from loyalty.workers.writes import Nonces, live_write, record

log = logging.getLogger("loyalty.workers.outbox")
MAX_IN_FLIGHT = 16  # transactions sent and not yet final, per sender
DEADLINE_MARGIN_S = 120  # a redemption goes only if its consent outlives this: it must be mined in time
HEARTBEAT_S = 2.0
RECHECK_S = 1.0
HOUSEKEEPING_S = 60.0
EXPIRE_BATCH = 500  # members per `expire` transaction
EXPIRED_READS = 1_000  # expiredBalanceOf calls per JSON-RPC batch
GLOBAL_REVERTS = frozenset({"LoyaltyPaused", "LoyaltyMissingRole", "LoyaltyBudgetExceeded"})
ITEM_REVERTS = frozenset({"LoyaltyInvalidMember", "LoyaltyInvalidAmount"})
HOLD_S = 5.0  # how long a sender waits after a refusal, or a revert for a reason no earn caused
GRANT_RETRY_S = 60.0  # a budget grant the chain refused is sent again after this
STUCK = timedelta(minutes=5)  # a write unmined this long is cancelled (its rows then go out again)
PROVISIONING = (WriteKind.TOPUP, WriteKind.GRANT_ISSUER, WriteKind.SET_BUDGET)
BUDGET_CHANGES = (WriteKind.GRANT_BUDGET, WriteKind.MOVE_BUDGET)
AGREEMENT_WRITES = (WriteKind.REGISTER_AGREEMENT, WriteKind.REVOKE_AGREEMENT)
ALL_AGREEMENT_WRITES = (*AGREEMENT_WRITES, WriteKind.ALLOW_BRAND)
FINAL = (WriteStatus.CONFIRMED, WriteStatus.FAILED)
T = TypeVar("T")


class Pass(NamedTuple):
    """What one pass did: whether it finalized or sent anything, and what is still in flight."""

    progressed: bool
    in_flight: int


@dataclass
class OutboxWriter:
    """Drains the outbox; `run_once` is one pass, `run` loops until stopped."""

    runtime: Runtime
    role: str = "writer"
    poll_s: float = 0.02  # between passes while writes are in flight
    idle_poll_s: float = 0.1  # at most, while there is nothing to do (each idle pass doubles the wait)
    lease: leases.Lease = field(init=False)
    _hold: dict[int, float] = field(default_factory=dict, init=False)
    _timers: dict[str, float] = field(default_factory=dict, init=False)
    _state: str | None = field(default=None, init=False)
    _params: dict[str, tuple[int, int, int]] = field(default_factory=dict, init=False)  # by token
    _pause: dict[str, tuple[int, bool]] = field(default_factory=dict, init=False)  # by token: (block, paused)
    _program_tokens: dict[int, str] = field(default_factory=dict, init=False)  # active programs' token addresses
    _grant_hold: dict[int, float] = field(default_factory=dict, init=False)
    _exchange_hold: dict[int, float] = field(default_factory=dict, init=False)  # by agreement row
    _exchange_issuer_of: set[int] = field(default_factory=set, init=False)  # programs the exchange is an issuer of
    _exchange_gas: dict[int, int] = field(default_factory=dict, init=False)  # per order, by agreement row
    # Brands' agreement signers: the one the exchange was seen to take, and one just sent (the
    # signer, and until when it is not sent again).
    _signers_set: dict[int, str] = field(default_factory=dict, init=False)
    _signer_hold: dict[int, tuple[str, float]] = field(default_factory=dict, init=False)
    _signer_brands: set[int] | None = field(default=None, init=False)  # brands that ever had a signer of their own
    # By exchange: the end (chain time) of its oldest open period, when nothing is to close
    # before it; and until when a close that failed is not asked for again.
    _period_ends_at: dict[str, int] = field(default_factory=dict, init=False)
    _close_hold: dict[str, float] = field(default_factory=dict, init=False)
    _tallies: Tallies | None = field(default=None, init=False)  # leaderboard periods being closed

    def __post_init__(self) -> None:
        self.sessions = self.runtime.sessions
        self.chain = self.runtime.chain
        self.token = self.runtime.token
        self.custody = self.runtime.custody
        self.lease = leases.Lease(self.runtime.engine, leases.holder_name(self.role))

    # ------------------------------------------------------------------------------- loop
    def run(self, stop: threading.Event) -> None:
        """Pass after pass until `stop`; backs off while the chain is away or the lease is
        another's, and logs one line when that state changes, not one per pass."""
        delay = self.poll_s
        try:
            while not stop.is_set():
                try:
                    done = self.run_once()
                    self._report(None)
                    if done.progressed:
                        delay = 0
                    elif done.in_flight:
                        delay = self.poll_s
                    else:  # idle: an accepted write waits at most idle_poll_s to be sent
                        delay = min(max(delay * 2, self.poll_s), self.idle_poll_s)
                except NotLeaseHolderError:
                    self._report("standing by: another writer holds the lease")
                    delay = 1.0
                except ChainUnavailableError as exc:
                    self._report(f"waiting for the chain: {exc}")
                    delay = min(max(delay * 2, 0.25), 5.0)
                except Exception as exc:  # a bad pass must not kill the writer: report it, back off
                    self._report(f"pass failed: {type(exc).__name__}: {exc}", exc)
                    delay = min(max(delay * 2, 0.25), 5.0)
                if delay:
                    stop.wait(delay)
        finally:
            self.close()

    def close(self) -> None:
        self.lease.release()
        if self._tallies is not None:
            self._tallies.close()

    def _report(self, state: str | None, exc: Exception | None = None) -> None:
        if state == self._state:
            return
        if state is None:
            log.info("writing again")
        elif exc is not None:
            log.error("outbox %s", state, exc_info=exc)
        else:
            log.warning("outbox %s", state)
        self._state = state

    def _due(self, timer: str, every_s: float) -> bool:
        now = time.monotonic()
        if now - self._timers.get(timer, 0.0) < every_s:
            return False
        self._timers[timer] = now
        return True

    # ------------------------------------------------------------------------------- pass
    def run_once(self) -> Pass:
        """One pass over the operator's and every partner's writes."""
        if not self.lease.acquire():
            raise NotLeaseHolderError
        head = self.chain.head()
        with self.sessions() as session:
            if self._due("heartbeat", HEARTBEAT_S):
                with write_lock(session):
                    leases.heartbeat(session, leases.OUTBOX, head.number)
                    session.commit()
            if self._due("recheck", RECHECK_S):
                self._recheck(session, head)
            partners = session.scalars(select(Partner).order_by(Partner.id)).all()
        progressed, in_flight = False, 0
        operator = self.chain.operator
        receipts = [partial(self._receipts, operator.address, lambda: operator, head)]
        receipts += [
            partial(self._receipts, p.issuer_address, partial(self._issuer, p), head, partial(self._token_of, p))
            for p in partners
        ]
        for partner_id, step in zip([None, *(p.id for p in partners)], receipts, strict=True):
            finalized, pending = self._guarded(partner_id, step, (0, 0))
            progressed, in_flight = progressed or bool(finalized), in_flight + pending
        progressed |= self._guarded(None, partial(self._operator_jobs, head, partners), False)
        for partner in partners:
            if partner.provisioned_at is not None:
                sent = self._guarded(partner.id, partial(self._send, partner, head), 0)
                progressed, in_flight = progressed or bool(sent), in_flight + sent
        if self._due("housekeeping", HOUSEKEEPING_S):
            self._housekeeping()
        return Pass(progressed, in_flight)

    def _issuer(self, partner: Partner) -> LocalAccount:
        return self.custody.open(partner.issuer_address, partner.issuer_key_sealed)

    def _token_of(self, partner: Partner) -> LoyaltyToken:
        """The token the issuer account issues on: its program's (accounts exist only in
        programs whose token is deployed)."""
        if partner.program_id == programs.DEFAULT_PROGRAM:
            return self.token
        if (address := self._program_tokens.get(partner.program_id)) is None:
            with self.sessions() as session:
                found = session.get(Program, partner.program_id)
                if found is None or found.status != ProgramStatus.ACTIVE or found.token_address is None:
                    raise ValueError(f"program {partner.program_id} has no token deployed")
                address = self._program_tokens[partner.program_id] = found.token_address
        return self.runtime.token_at(address)

    def _guarded(self, partner_id: int | None, step: Callable[[], T], fallback: T) -> T:
        """Run one partner's (or the operator's) step; a failure other than the chain's own is
        logged and skipped, so it never stops the others."""
        try:
            return step()
        except ChainUnavailableError:
            raise
        except Exception:
            if self._due(f"error:{partner_id}", 60.0):
                log.exception("outbox step for %s failed", f"partner {partner_id}" if partner_id else "the operator")
            return fallback

    # ------------------------------------------------------------------------ receipts
    def _receipts(
        self,
        sender: str,
        account: Callable[[], LocalAccount],
        head: Block,
        token: Callable[[], LoyaltyToken] | None = None,
    ) -> tuple[int, int]:
        """Finalize `sender`'s sent writes by receipt; returns how many it finalized and how many are in flight.

        `account` opens the sender's key, needed only to cancel a stuck write or fill a gap;
        `token` is the token an issuer account's earn batches go to."""
        with self.sessions() as session:
            writes = session.scalars(
                select(ChainWrite)
                .where(ChainWrite.sender == sender, ChainWrite.status == WriteStatus.SENT)
                .order_by(ChainWrite.nonce)
            ).all()
        if not writes:
            return 0, 0
        # Every RPC happens before the write transaction: the API's accepts must not queue
        # behind a round-trip to the node.
        receipts = self.chain.receipts([w.tx_hash for w in writes])
        depth = self.runtime.required_confirmations()
        final = [(w, r) for w in writes if (r := receipts[w.tx_hash]) and head.number - r.block_number + 1 >= depth]
        dropped: list[ChainWrite] = []
        unmined = [w for w in writes if receipts[w.tx_hash] is None]
        if unmined:
            known = self.chain.known([w.tx_hash for w in unmined])
            final_block = max(0, head.number - depth + 1)
            used = self.chain.account_nonce(sender, final_block)
            stuck = []
            for write in unmined:
                if write.tx_hash in known:
                    if write.created_at < utcnow() - STUCK:
                        stuck.append(write)  # pending too long (a fee below the base fee, say)
                elif write.nonce < used:
                    # Its nonce went to another transaction in a final block, and it left no trace
                    # there itself: it can never be mined, and its rows may go out again.
                    if not self._left_a_trace(write, final_block):
                        dropped.append(write)
                else:
                    try:  # the node forgot it (a restart, a rollback): the same transaction again
                        self.chain.broadcast(SignedTx(write.tx_hash, write.raw_tx))
                    except TxRefusedError as exc:
                        log.warning("write %s (nonce %s) refused again: %s", write.id, write.nonce, exc.reason)
                        if write.created_at < utcnow() - STUCK:
                            stuck.append(write)
            self._cancel_and_fill(sender, account, head, used, unmined, stuck)
        if not final and not dropped:
            return 0, len(writes)
        times = {n: b.timestamp for n, b in self.chain.blocks(sorted({r.block_number for _, r in final})).items() if b}
        reasons = {w.id: None if r.succeeded else self.chain.revert_of(w.tx_hash, r.gas_used) for w, r in final}
        issued = any(w.kind == WriteKind.EARN_BATCH for w, _ in final)
        budget = token().issue_budget(sender) if token is not None and issued else None
        with self.sessions() as session, write_lock(session):
            for write, receipt in final:
                self._finalize(session, write, receipt, times.get(receipt.block_number), reasons[write.id], budget)
            for write in dropped:
                self._drop(session, write, "replaced: its nonce was used by another transaction", split=False)
            session.commit()
        return len(final) + len(dropped), len(writes) - len(final) - len(dropped)

    def _left_a_trace(self, write: ChainWrite, final_block: int) -> bool:
        """Whether the chain shows the write's effect though not its receipt (a lagging node
        behind a load balancer, say): its batch ref, or its redemption, logged."""
        start = self.runtime.deployment_block
        if write.kind in (WriteKind.EARN_BATCH, WriteKind.REDEEM) and write.ref is not None:
            with self.sessions() as session:
                issuer = session.get(Partner, write.partner_id)
            token = self.token if issuer is None else self._token_of(issuer)
        if write.kind == WriteKind.EARN_BATCH and write.ref is not None:
            return token.batch_logged(write.sender, write.ref, start, final_block)
        if write.kind == WriteKind.REDEEM and write.ref is not None:
            with self.sessions() as session:
                row = session.execute(
                    select(Member.wallet_address, Redemption.reward_id)
                    .join(Redemption, Redemption.member_id == Member.id)
                    .where(Redemption.write_id == write.id)
                ).first()
            return row is not None and token.redeem_logged(
                row.wallet_address, write.sender, row.reward_id, write.ref, start, final_block
            )
        if write.kind == WriteKind.EXCHANGE_BATCH and write.ref is not None:
            with self.sessions() as session:
                agreement = session.get(RateAgreement, write.ref)
                ref = session.scalar(select(Exchange.ref).where(Exchange.write_id == write.id).limit(1))
            return (
                agreement is not None
                and ref is not None
                and self._exchange_at(agreement.exchange_address).exchanged_logged(
                    agreement.agreement_id, ref, start, final_block
                )
            )
        return False

    def _cancel_and_fill(
        self,
        sender: str,
        account: Callable[[], LocalAccount],
        head: Block,
        floor: int,
        unmined: Sequence[ChainWrite],
        stuck: Sequence[ChainWrite],
    ) -> None:
        """Keep the sender's nonces moving: cancel writes stuck for long (a transfer of nothing,
        at a higher tip, takes their nonce; once that is final they are dropped and their rows go
        out again), and fill nonces no live write holds below the lowest unmined one (a write
        dropped after a rollback, a nonce handed out and never recorded): a later transaction
        waits in the node until every nonce before it is used."""
        with self.sessions() as session:
            cancelled = set(
                session.scalars(
                    select(ChainWrite.nonce).where(
                        ChainWrite.sender == sender,
                        ChainWrite.kind == WriteKind.CANCEL,
                        ChainWrite.status == WriteStatus.SENT,
                    )
                )
            )
            live = set(
                session.scalars(
                    select(ChainWrite.nonce).where(
                        ChainWrite.sender == sender, ChainWrite.nonce >= floor, ChainWrite.status != WriteStatus.DROPPED
                    )
                )
            )
        lowest = min(w.nonce for w in unmined)
        nonces = [w.nonce for w in stuck if w.kind != WriteKind.CANCEL and w.nonce not in cancelled]
        nonces += [n for n in range(floor, lowest) if n not in live]
        for nonce in sorted(set(nonces)):
            signed = self.chain.sign_cancel(account(), nonce, head.base_fee)
            log.warning("cancelling nonce %s of %s (a stuck write, or a gap)", nonce, sender)
            self._record_and_send(None, sender, WriteKind.CANCEL, nonce, signed)

    def _finalize(
        self,
        session: Session,
        write: ChainWrite,
        receipt: Receipt,
        mined_at: int | None,
        revert: ChainRevertError | None,
        budget: int | None,
    ) -> None:
        """Apply a final receipt, once: the status changes only from `sent` (a second writer, or
        a second look, finds nothing to do)."""
        error = None if revert is None else str(revert)
        changed = session.execute(
            update(ChainWrite)
            .where(ChainWrite.id == write.id, ChainWrite.status == WriteStatus.SENT)
            .values(
                status=WriteStatus.CONFIRMED if error is None else WriteStatus.FAILED,
                block_number=receipt.block_number,
                block_hash=receipt.block_hash,
                mined_at=mined_at,
                error=error,
            )
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            return
        if write.kind == WriteKind.EARN_BATCH:
            if error is None:
                earning.confirm(session, write.id, write.partner_id, budget)
            else:
                self._release_reverted_batch(session, write, revert)
        elif write.kind == WriteKind.REDEEM:
            if error is None:
                redemptions.post(session, write.id)
            else:
                for redemption in session.scalars(select(Redemption).where(Redemption.write_id == write.id)):
                    redemptions.void(session, redemption, error)
        elif write.kind in BUDGET_CHANGES:
            if error is None:
                _budget_landed(session, write, +1)
            else:  # the operator cannot set budgets (its role, a pause): try again in a minute
                self._grant_hold[write.partner_id or 0] = time.monotonic() + GRANT_RETRY_S
                log.warning("budget %s for partner %s failed: %s", write.kind, write.partner_id, error)
        elif write.kind in (WriteKind.GRANT_ISSUER, WriteKind.SET_BUDGET) and error is not None:
            session.execute(update(Partner).where(Partner.id == write.partner_id).values(provision_error=error))
        elif write.kind == WriteKind.DEPLOY_PROGRAM and write.program_id is not None:
            if error is None:
                programs.deployed(session, write.program_id, receipt.block_number)
            else:  # signed again on the next pass
                log.warning("deploying program %s failed: %s", write.program_id, error)
        elif write.kind in AGREEMENT_WRITES and write.ref is not None:
            registering = write.kind == WriteKind.REGISTER_AGREEMENT
            row = session.get(RateAgreement, write.ref)
            if error is not None and row is not None:
                # Registration is open to anyone, and a brand may revoke on its own: the chain
                # may hold what this write wanted though the write itself reverted.
                registered, revoked = self._exchange_at(row.exchange_address).status(row.agreement_id)
                if registered if registering else revoked:
                    error = None
            agreements.landed(session, write.ref, registering=registering, error=error)
        elif write.kind == WriteKind.EXCHANGE_BATCH:
            if error is None:
                exchanges.confirm(session, write.id)
                self._period_ends_at.clear()  # mined in a period that may have ended since: look again
            else:  # each goes again, in a batch estimated first (order by order if it fails)
                log.warning("exchange batch %s reverted: %s", write.id, error)
                self._exchange_gas.pop(write.ref or 0, None)
                exchanges.requeue(session, write.id)
        elif write.kind == WriteKind.SET_INCOMING:
            if error is None:
                exchanging.incoming_landed(session, write, +1)
            else:
                self._grant_hold[-(write.program_id or 0)] = time.monotonic() + GRANT_RETRY_S
                log.warning("incoming budget for program %s failed: %s", write.program_id, error)
        elif write.kind == WriteKind.GRANT_EXCHANGE and error is not None:
            self._grant_hold[-(write.program_id or 0)] = time.monotonic() + GRANT_RETRY_S
            log.warning("making the exchange an issuer of program %s failed: %s", write.program_id, error)
        elif write.kind in exchanging.SETTLEMENT_WRITES and write.ref is not None:
            if error is not None and self._settlement_done(session, write.ref):
                error = None  # another did it first (anyone may close; a creditor may confirm a paid one)
            exchanging.settlement_landed(session, write.ref, error)

    def _settlement_done(self, session: Session, step_id: int) -> bool:
        """Whether the chain has what a settlement step asked for, though its own write reverted."""
        step = session.get(Settlement, step_id)
        exchange = self.runtime.exchange()
        if step is None:
            return False
        if step.action == SettlementAction.CLOSE:
            return step.period < exchange.next_period_to_close()
        payments = exchange.payments_of(step.period)
        return step.payment_index < len(payments) and payments[step.payment_index][1]

    def _drop(self, session: Session, write: ChainWrite, reason: str, *, split: bool) -> None:
        """A write that was never mined and never can be: its rows go back to the queue (a
        redemption is sent again after a fresh check; earns go into a new batch, halved with
        `split` when the transaction itself was at fault)."""
        changed = session.execute(
            update(ChainWrite)
            .where(ChainWrite.id == write.id, ChainWrite.status == WriteStatus.SENT)
            .values(status=WriteStatus.DROPPED, error=reason)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            return
        log.warning("write %s (%s, nonce %s) dropped: %s", write.id, write.kind, write.nonce, reason)
        if write.kind == WriteKind.EARN_BATCH:
            self._requeue(session, write, split=split, error=reason)
        elif write.kind == WriteKind.REDEEM:
            for redemption in session.scalars(
                select(Redemption).where(
                    Redemption.write_id == write.id, Redemption.status == RedemptionStatus.RESERVED
                )
            ):
                if split:  # the transaction itself was refused: sending it again would be too
                    redemptions.void(session, redemption, reason)
                else:
                    redemption.write_id = None
        elif write.kind == WriteKind.EXCHANGE_BATCH:
            self._exchange_gas.pop(write.ref or 0, None)  # estimated again before it goes
            exchanges.requeue(session, write.id)
        elif write.kind in exchanging.SETTLEMENT_WRITES and write.ref is not None:
            exchanging.settlement_requeued(session, write.ref, SettlementStatus.QUEUED)

    def _release_reverted_batch(self, session: Session, write: ChainWrite, error: ChainRevertError | None) -> None:
        """A batch that reverted minted nothing, so its earns may go out again (the transaction
        is final and can never be mined again). If the revert names a member, only that
        member's earns fail; if it names no earn (pause, role, budget), all wait; otherwise the
        batch is halved until the bad earn stands alone and fails by itself."""
        assert error is not None
        if error.error in ITEM_REVERTS and isinstance(member := error.error_args.get("member"), str):
            bad = [
                earn_id
                for earn_id, wallet in session.execute(
                    select(Earn.id, Member.wallet_address)
                    .join(Member, Member.id == Earn.member_id)
                    .where(Earn.write_id == write.id, Earn.status == EarnStatus.PENDING)
                )
                if wallet.lower() == member.lower()
            ]
            self._fail_earns(session, write.partner_id, bad, str(error))
            self._requeue(session, write, split=False)
        elif error.error in GLOBAL_REVERTS:
            self._hold[write.partner_id or 0] = time.monotonic() + HOLD_S
            self._requeue(session, write, split=False)
        else:
            self._requeue(session, write, split=True, error=str(error))

    def _requeue(self, session: Session, write: ChainWrite, *, split: bool, error: str | None = None) -> None:
        earns = (
            session.execute(select(Earn.id).where(Earn.write_id == write.id, Earn.status == EarnStatus.PENDING))
            .scalars()
            .all()
        )
        if split and len(earns) == 1:
            self._fail_earns(session, write.partner_id, list(earns), error or "could not be sent")
            return
        session.execute(
            update(Earn)
            .where(Earn.id.in_(earns))
            .values(write_id=None, batch_limit=max(1, len(earns) // 2) if split else Earn.batch_limit)
            .execution_options(synchronize_session=False)
        )

    @staticmethod
    def _fail_earns(session: Session, partner_id: int | None, earn_ids: Sequence[int], error: str) -> None:
        if earning.fail(session, partner_id, earn_ids, error):
            log.warning("%d earns failed: %s", len(earn_ids), error)

    def _recheck(self, session: Session, head: Block) -> None:
        """Final writes whose block is no longer on the chain go back to `sent`: a reorg, or a
        dev chain rolled back to its last dump. Their very same transactions are then sent
        again (same nonce, same ref), so they land once. One read when nothing changed: if the
        newest final block is still there, so is everything before it."""
        newest = session.execute(
            select(ChainWrite.block_number, ChainWrite.block_hash)
            .where(ChainWrite.status.in_(FINAL), ChainWrite.block_hash.is_not(None))
            .order_by(ChainWrite.block_number.desc())
            .limit(1)
        ).first()
        if newest is None:
            return
        block = self.chain.blocks([newest.block_number])[newest.block_number]
        if block is not None and block.hash == newest.block_hash:
            return
        gone: list[ChainWrite] = []
        hashes: dict[int, str | None] = {}
        for write in session.scalars(
            select(ChainWrite)
            .where(ChainWrite.status.in_(FINAL), ChainWrite.block_hash.is_not(None))  # (none before 0.2)
            .order_by(ChainWrite.block_number.desc())
        ).yield_per(500):
            number = int(write.block_number or 0)
            if number not in hashes:
                found = self.chain.blocks([number])[number]
                hashes[number] = found.hash if found else None
            if hashes[number] == write.block_hash:
                break  # this block, and every earlier one, is still on the chain
            gone.append(write)
        session.rollback()
        log.warning("%d final writes are no longer on the chain (reorg or rollback): sending them again", len(gone))
        with write_lock(session):
            for write in gone:
                self._unfinalize(session, write)
            session.commit()

    def _unfinalize(self, session: Session, write: ChainWrite) -> None:
        if write.status == WriteStatus.FAILED:
            # Its rows were released when it reverted; sending it again could now succeed
            # and issue them twice, so it is dropped and its nonce goes to a new write.
            session.execute(
                update(ChainWrite)
                .where(ChainWrite.id == write.id, ChainWrite.status == WriteStatus.FAILED)
                .values(status=WriteStatus.DROPPED)
            )
            return
        changed = session.execute(
            update(ChainWrite)
            .where(ChainWrite.id == write.id, ChainWrite.status == WriteStatus.CONFIRMED)
            .values(status=WriteStatus.SENT, block_number=None, block_hash=None, mined_at=None)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            return
        if write.kind == WriteKind.EARN_BATCH:
            back = session.execute(
                update(Earn)
                .where(Earn.write_id == write.id, Earn.status == EarnStatus.CONFIRMED)
                .values(status=EarnStatus.PENDING, confirmed_at=None)
                .returning(Earn.amount_points)
            ).scalars()
            session.execute(
                update(Partner)
                .where(Partner.id == write.partner_id)
                .values(pending_points=Partner.pending_points + sum(back))
                .execution_options(synchronize_session=False)
            )
        elif write.kind == WriteKind.REDEEM:
            session.execute(
                update(Redemption)
                .where(Redemption.write_id == write.id, Redemption.status == RedemptionStatus.POSTED)
                .values(status=RedemptionStatus.RESERVED)
            )
        elif write.kind in BUDGET_CHANGES:
            _budget_landed(session, write, -1)  # on its way again
        elif write.kind == WriteKind.DEPLOY_PROGRAM and write.program_id is not None:
            programs.undeployed(session, write.program_id)
        elif write.kind in AGREEMENT_WRITES and write.ref is not None:
            agreements.unlanded(session, write.ref, registering=write.kind == WriteKind.REGISTER_AGREEMENT)
        elif write.kind == WriteKind.EXCHANGE_BATCH:
            exchanges.unconfirm(session, write.id)
        elif write.kind == WriteKind.SET_INCOMING:
            exchanging.incoming_landed(session, write, -1)
        elif write.kind in exchanging.SETTLEMENT_WRITES and write.ref is not None:
            exchanging.settlement_requeued(session, write.ref, SettlementStatus.SENT)

    # ------------------------------------------------------------------------- sending
    def _send(self, partner: Partner, head: Block) -> int:
        """Send the partner's next redemptions and earn batches; returns how many went out."""
        issuer = self._issuer(partner)
        nonces = Nonces(self.chain, partner.issuer_address)
        with self.sessions() as session:
            in_flight = (
                session.scalar(
                    select(func.count()).where(
                        ChainWrite.sender == partner.issuer_address, ChainWrite.status == WriteStatus.SENT
                    )
                )
                or 0
            )
        sent = 0
        if in_flight < MAX_IN_FLIGHT and self._hold.get(partner.id, 0.0) <= time.monotonic():
            sent += self._send_redemptions(partner, issuer, head, nonces, MAX_IN_FLIGHT - in_flight)
        granting = self._granting(partner)  # earns wait: a budget change sets an absolute budget
        while not granting and in_flight + sent < MAX_IN_FLIGHT and self._hold.get(partner.id, 0.0) <= time.monotonic():
            if not self._send_earn_batch(partner, issuer, head, nonces, in_flight + sent):
                break
            sent += 1
        if (sent or partner.id in self._hold) and self.chain.eth_balance(
            partner.issuer_address
        ) < ISSUER_GAS_TOPUP_WEI // 2:
            self._top_up(partner, head)
        return sent

    def _send_earn_batch(
        self, partner: Partner, issuer: LocalAccount, head: Block, nonces: Nonces, in_flight: int
    ) -> bool:
        """Sign, record and broadcast the next batch; returns whether there was one.

        A batch smaller than a full one goes only when nothing else is in flight: while the
        chain is busy, earns keep gathering into fuller (cheaper per earn) batches."""
        token = self._token_of(partner)
        most = token.max_batch_size(head.gas_limit)
        with self.sessions() as session:
            rows = session.execute(
                select(Earn.id, Member.wallet_address, Earn.amount_points, Earn.batch_limit)
                .join(Member, Member.id == Earn.member_id)
                .where(Earn.partner_id == partner.id, Earn.status == EarnStatus.PENDING, Earn.write_id.is_(None))
                .order_by(Earn.id)
                .limit(most)
            ).all()
            limits = [row.batch_limit for row in rows if row.batch_limit]
            rows = rows[: min([most, *limits])]
            if not rows or (len(rows) < most and in_flight and not limits) or self._paused(head, token):
                return False  # earns wait out a pause (redemptions are voided: a checkout cannot wait)
            nonce, ref = nonces.next(session), next_ref(session, partner.id)
        total = sum(r.amount_points for r in rows)
        if (budget := token.issue_budget(partner.issuer_address)) < total:
            self._over_budget(partner, budget, total)
            return False
        signed = token.sign_earn_batch(
            issuer, nonce, [r.wallet_address for r in rows], [r.amount_points for r in rows], ref, head.base_fee
        )
        with self.sessions() as session, write_lock(session):
            # Claimed only now, so the write transaction does not span the signing. If the API
            # handed the ref to a consent, or another writer took the earns, try again next pass.
            if not claim_ref(session, partner.id, ref):
                nonces.release(nonce)
                return False
            write = record(session, partner.id, partner.issuer_address, WriteKind.EARN_BATCH, nonce, signed, ref)
            taken = session.execute(
                update(Earn)
                .where(Earn.id.in_([r.id for r in rows]), Earn.write_id.is_(None), Earn.status == EarnStatus.PENDING)
                .values(write_id=write.id)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != len(rows):  # type: ignore[attr-defined]
                session.rollback()
                nonces.release(nonce)
                return False
            session.commit()  # recorded before it is broadcast: see the module docstring
        return self._broadcast(write, signed)

    def _over_budget(self, partner: Partner, budget: int, total: int) -> None:
        """The on-chain budget no longer covers what the database accepted (the admin lowered
        it on-chain): the earns wait rather than revert, the API counts against the real budget,
        and /v1/health says so."""
        with self.sessions() as session, write_lock(session):
            session.execute(update(Partner).where(Partner.id == partner.id).values(budget_points=budget))
            session.commit()
        self._hold[partner.id] = time.monotonic() + HOLD_S
        if self._due(f"budget:{partner.id}", 60.0):
            log.warning("partner %s: on-chain budget %s is below the next batch's %s points", partner.id, budget, total)

    def _send_redemptions(self, partner: Partner, issuer: LocalAccount, head: Block, nonces: Nonces, room: int) -> int:
        """Send reserved redemptions, at most one in flight per member: each goes only after the
        chain shows the member's nonce, balance and the consent's deadline let it succeed.
        One the chain would refuse is voided without a transaction; a custodial member's consent
        is signed again when only its nonce or deadline went stale."""
        token = self._token_of(partner)
        with self.sessions() as session:
            busy = set(  # members with a burn in flight on this token: their nonce and balance are moving
                session.scalars(
                    select(Redemption.member_id)
                    .join(ChainWrite, ChainWrite.id == Redemption.write_id)
                    .join(Reward, Reward.id == Redemption.reward_id)
                    .where(ChainWrite.status == WriteStatus.SENT, Reward.program_id == partner.program_id)
                )
            )
            busy |= set(  # or an exchange out of this program (the same token's nonce)
                session.scalars(
                    select(Exchange.member_id)
                    .join(ChainWrite, ChainWrite.id == Exchange.write_id)
                    .where(ChainWrite.status == WriteStatus.SENT, Exchange.source_program_id == partner.program_id)
                )
            )
            # the brand's redemptions of rewards in this account's program
            brand_id = partner.owner_id if partner.kind == PartnerKind.PROGRAM else partner.id
            waiting = session.execute(
                select(Redemption, Member)
                .join(Member, Member.id == Redemption.member_id)
                .join(Reward, Reward.id == Redemption.reward_id)
                .where(
                    Redemption.partner_id == brand_id,
                    Reward.program_id == partner.program_id,
                    Redemption.status == RedemptionStatus.RESERVED,
                    Redemption.write_id.is_(None),
                )
                .order_by(Redemption.id)
            ).all()
        queue: dict[int, tuple[Redemption, Member]] = {}
        for redemption, member in waiting:
            if member.id not in busy and member.id not in queue:
                queue[member.id] = (redemption, member)
        queue = dict(list(queue.items())[:room])
        if not queue:
            return 0
        states = token.members_state([m.wallet_address for _, m in queue.values()], head.number)
        validity = self._token_params(token)[2]
        sent = 0
        for redemption, member in queue.values():
            balance, member_nonce = states[member.wallet_address]
            # a reserved redemption carries its consent (only one awaiting the member has none)
            assert redemption.nonce is not None and redemption.deadline is not None and redemption.ref is not None
            problem = None
            if self._paused(head, token):
                problem = "LoyaltyPaused: the token is paused"
            elif balance < redemption.amount_points:
                problem = f"insufficient_points: the member holds {balance} points; the reward costs {redemption.amount_points}"
            elif redemption.nonce != member_nonce or redemption.deadline < head.timestamp + DEADLINE_MARGIN_S:
                if member.custodial and member.wallet_key_sealed is not None:
                    try:
                        self._resign(redemption, member, partner, member_nonce, head, token)
                    except KeyDecryptionError as exc:
                        problem = f"consent_stale: {exc}"
                elif redemption.nonce != member_nonce:
                    problem = (
                        f"consent_stale: the member's nonce is {member_nonce}, the consent was signed for "
                        f"{redemption.nonce} (a permit or another redemption used it)"
                    )
                else:
                    problem = f"consent_expired: the consent expires at {redemption.deadline}, too soon to be mined"
            if problem is not None:
                with self.sessions() as session, write_lock(session):
                    fresh = session.get(Redemption, redemption.id)
                    if fresh is not None and fresh.write_id is None:
                        redemptions.void(session, fresh, problem)
                    session.commit()
                continue
            with self.sessions() as session:
                nonce = nonces.next(session)
            signed = token.sign_redeem(
                issuer,
                nonce,
                head.base_fee,
                member=member.wallet_address,
                amount_points=redemption.amount_points,
                reward_id=redemption.reward_id,
                ref=redemption.ref,
                deadline=redemption.deadline,
                signature=redemption.signature or b"",
                validity_epochs=validity,
                contract_wallet=member.smart_wallet,
            )
            with self.sessions() as session, write_lock(session):
                write = record(
                    session, partner.id, partner.issuer_address, WriteKind.REDEEM, nonce, signed, redemption.ref
                )
                taken = session.execute(
                    update(Redemption)
                    .where(
                        Redemption.id == redemption.id,
                        Redemption.write_id.is_(None),
                        Redemption.status == RedemptionStatus.RESERVED,
                    )
                    .values(write_id=write.id)
                )
                if taken.rowcount != 1:  # type: ignore[attr-defined]
                    session.rollback()
                    nonces.release(nonce)
                    continue
                session.commit()
            if not self._broadcast(write, signed):
                break
            sent += 1
        return sent

    def _resign(
        self, redemption: Redemption, member: Member, partner: Partner, nonce: int, head: Block, token: LoyaltyToken
    ) -> None:
        """Sign a custodial member's consent again for the nonce and a deadline the chain will take
        (the member approved this redemption; only the consent's nonce and deadline change)."""
        assert member.wallet_key_sealed is not None and redemption.ref is not None
        consent = RedeemConsent(
            member.wallet_address,
            partner.issuer_address,
            redemption.amount_points,
            redemption.reward_id,
            redemption.ref,
            nonce,
            head.timestamp + CONSENT_VALIDITY_S,
        )
        typed = redeem_typed_data(
            consent,
            chain_id=self.chain.chain_id,
            token_address=token.address,
            token_name=token.name,
        )
        wallet = self.custody.open(member.wallet_address, member.wallet_key_sealed)
        redemption.nonce, redemption.deadline = consent.nonce, consent.deadline
        redemption.signature = sign_typed_data(typed, wallet.key)
        with self.sessions() as session, write_lock(session):
            session.execute(
                update(Redemption)
                .where(Redemption.id == redemption.id, Redemption.write_id.is_(None))
                .values(nonce=redemption.nonce, deadline=redemption.deadline, signature=redemption.signature)
            )
            session.commit()

    def _record_and_send(
        self, partner_id: int | None, sender: str, kind: WriteKind, nonce: int, signed: SignedTx
    ) -> bool:
        """Record a write that claims no rows, then broadcast it; returns whether the node took it."""
        with self.sessions() as session, write_lock(session):
            write = record(session, partner_id, sender, kind, nonce, signed)
            session.commit()
        return self._broadcast(write, signed)

    def _broadcast(self, write: ChainWrite, signed: SignedTx) -> bool:
        """Broadcast a recorded write; returns whether the node took it. One it refuses was
        never accepted anywhere, so it is dropped at once and its rows go back to the queue:
        halved (a batch) or voided (a redemption) when the transaction itself was at fault, else
        as they were, with the sender waiting a little (a full pool, no gas money yet)."""
        try:
            self.chain.broadcast(signed)
            return True
        except TxRefusedError as exc:
            with self.sessions() as session, write_lock(session):
                self._drop(session, write, f"refused by the node: {exc.reason}", split=exc.about_the_transaction)
                session.commit()
            if not exc.about_the_transaction:
                self._hold[write.partner_id or 0] = time.monotonic() + HOLD_S
            return False

    # ----------------------------------------------------------------------- operator jobs
    def _operator_jobs(self, head: Block, partners: Sequence[Partner]) -> bool:
        if self._hold.get(0, 0.0) > time.monotonic():  # the operator's last write was refused
            return False
        progressed = False
        by_id = {p.id: p for p in partners}
        for partner in partners:
            if partner.provisioned_at is None and partner.provision_error is None:
                owner = by_id.get(partner.owner_id or 0) if partner.kind == PartnerKind.CAMPAIGN else None
                # A campaign's account gets its budget once its partner's is lowered by it:
                # the chain never holds more budget than the partners were granted.
                if owner is None or (owner.provisioned_at is not None and owner.budget_to_move_points == 0):
                    progressed |= self._guarded(partner.id, partial(self._provision, partner, head), False)
            elif partner.provisioned_at is not None and (
                partner.budget_to_grant_points or partner.budget_to_move_points
            ):
                progressed |= self._guarded(partner.id, partial(self._change_budget, partner, head), False)
        progressed |= self._guarded(None, partial(self._deploy_programs, head), False)
        progressed |= self._guarded(None, partial(exchanging.agreement_signers, self, head), False)
        progressed |= self._guarded(None, partial(self._agreement_writes, head), False)
        progressed |= self._guarded(None, partial(exchanging.exchange_roles, self, head), False)
        progressed |= self._guarded(None, partial(exchanging.incoming_budgets, self, head), False)
        progressed |= self._guarded(None, partial(exchanging.send_exchanges, self, head), False)
        progressed |= self._guarded(None, partial(exchanging.close_ended_periods, self, head), False)
        progressed |= self._guarded(None, partial(exchanging.send_settlements, self, head), False)
        if self._due("sweep", self.runtime.settings.sweep_interval_s):
            progressed |= self._sweep(head)
        return progressed

    def _deploy_programs(self, head: Block) -> bool:
        """Deploy the tokens of programs created since (one operator write each, the token's
        address known from the operator's nonce before it is sent); a deployment that reverted,
        or whose nonce went to another write, is signed again."""
        with self.sessions() as session:
            waiting = session.scalars(
                select(Program).where(Program.status == ProgramStatus.DEPLOYING).order_by(Program.id)
            ).all()
            if not waiting:
                return False
            latest: dict[int | None, str] = {}
            for program_id, status in session.execute(
                select(ChainWrite.program_id, ChainWrite.status)
                .where(ChainWrite.kind == WriteKind.DEPLOY_PROGRAM, ChainWrite.status != WriteStatus.DROPPED)
                .order_by(ChainWrite.id)
            ):
                latest[program_id] = status
        progressed = False
        nonces = Nonces(self.chain, self.chain.operator.address)
        for program in waiting:
            if latest.get(program.id) in (WriteStatus.SENT, WriteStatus.CONFIRMED):
                continue
            with self.sessions() as session:
                nonce = nonces.next(session)
            signed, address = sign_deploy_token(
                self.chain, nonce, head.base_fee, name=program.name, symbol=program.symbol or "PTS",
                epoch_length_s=int(program.epoch_length_s or 0), validity_epochs=int(program.validity_epochs or 0),
            )  # fmt: skip
            with self.sessions() as session, write_lock(session):
                if live_write(session, WriteKind.DEPLOY_PROGRAM, program_id=program.id):  # another writer's
                    nonces.release(nonce)
                    continue
                write = record(session, None, self.chain.operator.address, WriteKind.DEPLOY_PROGRAM, nonce, signed)
                write.program_id = program.id
                programs.deploying(session, program.id, address)
                session.commit()
            log.info("deploying program %s's token at %s", program.id, address)
            progressed = True
            if not self._broadcast(write, signed):
                break
        return progressed

    def _agreement_writes(self, head: Block) -> bool:
        """Register agreements both brands signed (the operator sends them) and send brands'
        revocations (from the revoking brand's own account: only a party may revoke)."""
        with self.sessions() as session:
            todo = session.scalars(
                select(RateAgreement).where(
                    RateAgreement.status.in_((AgreementStatus.SIGNED, AgreementStatus.REVOKING))
                )
            ).all()
            if not todo:
                return False
            # Only writes still in flight: a final allow is done with, and a final registration
            # or revocation moved its row on.
            live = {
                (ref, kind)
                for ref, kind in session.execute(
                    select(ChainWrite.ref, ChainWrite.kind).where(
                        ChainWrite.kind.in_(ALL_AGREEMENT_WRITES), ChainWrite.status == WriteStatus.SENT
                    )
                )
            }
            revokers = {
                p.id: p for p in session.scalars(select(Partner).where(Partner.id.in_({r.revoked_by for r in todo})))
            }
        progressed = False
        for row in todo:
            exchange = self._exchange_at(row.exchange_address)
            kind = WriteKind.REGISTER_AGREEMENT if row.status == AgreementStatus.SIGNED else WriteKind.REVOKE_AGREEMENT
            if (row.id, kind) in live or (row.id, WriteKind.ALLOW_BRAND) in live:
                continue
            terms = agreements.terms_of(row)
            if kind == WriteKind.REGISTER_AGREEMENT and not exchange.is_program_brand(terms.target, terms.payee):
                # The target's admin (the operator, for the service's programs) allows the payee first.
                kind, partner_id, sender = WriteKind.ALLOW_BRAND, None, str(self.chain.operator.address)
                with self.sessions() as session:
                    nonce = Nonces(self.chain, sender).next(session)
                signed = exchange.sign_allow_brand(nonce, head.base_fee, terms.target, terms.payee)
            elif kind == WriteKind.REGISTER_AGREEMENT:
                assert row.payer_signature and row.payee_signature
                if not exchanging.signers_in_force(self, exchange, row.payer_id, row.payee_id):
                    continue  # a brand's own signer is on its way to the exchange
                partner_id, sender = None, str(self.chain.operator.address)
                with self.sessions() as session:
                    nonce = Nonces(self.chain, sender).next(session)
                signatures = bytes.fromhex(row.payer_signature[2:]), bytes.fromhex(row.payee_signature[2:])
                signed = exchange.sign_register(nonce, head.base_fee, terms, *signatures)
            else:
                revoker = revokers[row.revoked_by or 0]
                partner_id, sender = revoker.id, revoker.issuer_address
                with self.sessions() as session:
                    nonce = Nonces(self.chain, sender).next(session)
                signed = exchange.sign_revoke(self._issuer(revoker), nonce, head.base_fee, terms)
            with self.sessions() as session, write_lock(session):
                if live_write(session, kind, ref=row.id):  # another writer sent it since
                    continue
                write = record(session, partner_id, sender, kind, nonce, signed, row.id)
                session.commit()
            progressed = True
            self._broadcast(write, signed)
        return progressed

    def _exchange_at(self, address: str) -> PointsExchange:
        """The exchange an agreement was made on (the configured one, or an earlier one)."""
        current = self.runtime.exchange()
        return current if current.address.lower() == address.lower() else PointsExchange(self.chain, address)

    def _provision(self, partner: Partner, head: Block) -> bool:
        """Give a new partner's issuer account gas money, ISSUER_ROLE and its budget, one stored
        operator write each; the partner is provisioned when all three are final."""
        with self.sessions() as session:
            latest: dict[str, str] = {}
            for kind, status in session.execute(
                select(ChainWrite.kind, ChainWrite.status)
                .where(ChainWrite.partner_id == partner.id, ChainWrite.kind.in_(PROVISIONING))
                .where(ChainWrite.status != WriteStatus.DROPPED)
                .order_by(ChainWrite.id)
            ):
                latest[kind] = status
        if all(latest.get(kind) == WriteStatus.CONFIRMED for kind in PROVISIONING):
            with self.sessions() as session, write_lock(session):
                session.execute(
                    update(Partner)
                    .where(Partner.id == partner.id, Partner.provisioned_at.is_(None))
                    .values(provisioned_at=utcnow())
                )
                session.commit()
            log.info("partner %s provisioned on-chain (issuer %s)", partner.id, partner.issuer_address)
            return True
        missing = [kind for kind in PROVISIONING if kind not in latest]
        if not missing:
            return False
        nonces = Nonces(self.chain, self.chain.operator.address)
        token = self._token_of(partner)
        for kind in missing:
            with self.sessions() as session:
                nonce = nonces.next(session)
            if kind == WriteKind.TOPUP:
                signed = token.sign_topup(nonce, partner.issuer_address, head.base_fee)
            elif kind == WriteKind.GRANT_ISSUER:
                signed = token.sign_grant_issuer(nonce, partner.issuer_address, head.base_fee)
            else:  # what was granted, less grants still to carry on-chain (they go as their own writes)
                signed = token.sign_set_budget(
                    nonce,
                    partner.issuer_address,
                    partner.issue_budget_points - partner.budget_to_grant_points,
                    head.base_fee,
                )
            if not self._record_and_send(partner.id, self.chain.operator.address, kind, nonce, signed):
                break
        return True

    def _granting(self, partner: Partner) -> bool:
        """Whether a change of the partner's budget is on its way (read now: the admin may have
        granted, or the partner made a campaign, since the pass began)."""
        with self.sessions() as session:
            to_grant, to_move = session.execute(
                select(Partner.budget_to_grant_points, Partner.budget_to_move_points).where(Partner.id == partner.id)
            ).one()
            in_flight = session.scalar(
                select(func.count()).where(
                    ChainWrite.partner_id == partner.id,
                    ChainWrite.kind.in_(BUDGET_CHANGES),
                    ChainWrite.status == WriteStatus.SENT,
                )
            )
        return bool(to_grant > 0 or to_move > 0 or in_flight)

    def _change_budget(self, partner: Partner, head: Block) -> bool:
        """Carry a change of the partner's budget on-chain: `setIssueBudget(left + grant)` for
        a grant, `setIssueBudget(left - moved)` for budget moved to its campaigns; sent only
        while none of its earn batches is in flight (and none is sent until the change is
        final, see `_send`), so what is left cannot change under it. One change at a time,
        grants first."""
        if self._grant_hold.get(partner.id, 0.0) > time.monotonic():
            return False
        with self.sessions() as session:
            busy = session.scalar(
                select(func.count()).where(
                    ChainWrite.status == WriteStatus.SENT,
                    or_(
                        and_(ChainWrite.sender == partner.issuer_address, ChainWrite.kind == WriteKind.EARN_BATCH),
                        and_(ChainWrite.partner_id == partner.id, ChainWrite.kind.in_(BUDGET_CHANGES)),
                    ),
                )
            )
            # read now, not from the pass's start: a change finalized earlier in this pass is done
            to_grant, to_move = session.execute(
                select(Partner.budget_to_grant_points, Partner.budget_to_move_points).where(Partner.id == partner.id)
            ).one()
            if busy or (to_grant <= 0 and to_move <= 0):
                return False
            nonce = Nonces(self.chain, self.chain.operator.address).next(session)
        kind, amount = (
            (WriteKind.GRANT_BUDGET, int(to_grant)) if to_grant > 0 else (WriteKind.MOVE_BUDGET, int(to_move))
        )
        token = self._token_of(partner)
        left = token.issue_budget(partner.issuer_address)
        budget = left + amount if kind == WriteKind.GRANT_BUDGET else left - amount
        if budget < 0:  # the chain holds less than the database counted: wait, and say so
            self._grant_hold[partner.id] = time.monotonic() + GRANT_RETRY_S
            log.warning("partner %s: cannot move %d points to campaigns, %d left on-chain", partner.id, amount, left)
            return False
        signed = token.sign_set_budget(nonce, partner.issuer_address, budget, head.base_fee)
        with self.sessions() as session, write_lock(session):
            write = record(session, partner.id, self.chain.operator.address, kind, nonce, signed)
            write.amount_points = amount
            session.commit()
        log.info("partner %s: %s of %d points on-chain (budget %d -> %d)", partner.id, kind, amount, left, budget)
        return self._broadcast(write, signed)

    def _top_up(self, partner: Partner, head: Block) -> None:
        """Gas money for an issuer account running low (members and partners never pay gas)."""
        with self.sessions() as session:
            if session.scalar(
                select(func.count()).where(
                    ChainWrite.partner_id == partner.id,
                    ChainWrite.kind == WriteKind.TOPUP,
                    ChainWrite.status == WriteStatus.SENT,
                )
            ):
                return
            nonce = Nonces(self.chain, self.chain.operator.address).next(session)
        signed = self.token.sign_topup(nonce, partner.issuer_address, head.base_fee)
        self._record_and_send(partner.id, self.chain.operator.address, WriteKind.TOPUP, nonce, signed)

    def _paused(self, head: Block, token: LoyaltyToken) -> bool:
        """Whether the token is paused, read once per block."""
        if (seen := self._pause.get(token.address)) is None or seen[0] != head.number:
            seen = self._pause[token.address] = (head.number, token.paused())
        return seen[1]

    def _token_params(self, token: LoyaltyToken) -> tuple[int, int, int]:
        if token.address not in self._params:
            self._params[token.address] = token.params()
        return self._params[token.address]

    def _sweep(self, head: Block) -> bool:
        """Burn expired points of members who earned in epochs that expired since the last sweep,
        so indexers that sum `Transfer` events (wallets, explorers) stop counting them, on
        every program's token. The contract counts them out of `balanceOf` at once; this makes
        the events say so too."""
        with self.sessions() as session:
            others = session.execute(
                select(Program.id, Program.token_address).where(
                    Program.id != programs.DEFAULT_PROGRAM,
                    Program.status == ProgramStatus.ACTIVE,
                    Program.token_address.is_not(None),
                )
            ).all()
        tokens = [(programs.DEFAULT_PROGRAM, self.token)]
        tokens += [(program_id, self.runtime.token_at(str(address))) for program_id, address in others]
        swept = False
        for program_id, token in tokens:
            swept |= self._guarded(None, partial(self._sweep_program, head, program_id, token), False)
        return swept

    def _sweep_program(self, head: Block, program_id: int, token: LoyaltyToken) -> bool:
        start, length, validity = self._token_params(token)
        if head.timestamp < start:
            return False
        expired_before = start + ((head.timestamp - start) // length) * length  # lots expiring by now
        with self.sessions() as session:
            done = (
                session.scalar(select(func.max(ExpirySweep.expired_before)).where(ExpirySweep.program_id == program_id))
                or start
            )
            if expired_before <= done:
                return False
            # A lot earned in epoch e expires when epoch e + validity starts: the lots expired by
            # `expired_before` (but not by `done`) were earned up to `validity` epochs before it.
            window = (validity - 1) * length
            mined_then = or_(  # (writes finalized before 0.2 did not record the time)
                ChainWrite.mined_at.is_(None),
                and_(ChainWrite.mined_at >= done - window, ChainWrite.mined_at < expired_before - window),
            )
            earned = (
                select(Member.wallet_address)
                .join(Earn, Earn.member_id == Member.id)
                .join(ChainWrite, ChainWrite.id == Earn.write_id)
                .join(Partner, Partner.id == Earn.partner_id)
                .where(Earn.status == EarnStatus.CONFIRMED, Partner.program_id == program_id, mined_then)
            )
            exchanged_in = (  # points exchanged into the program were earned there too
                select(Member.wallet_address)
                .join(Exchange, Exchange.member_id == Member.id)
                .join(ChainWrite, ChainWrite.id == Exchange.write_id)
                .where(
                    Exchange.status == ExchangeStatus.CONFIRMED,
                    Exchange.target_program_id == program_id,
                    mined_then,
                )
            )
            wallets = sorted(set(session.scalars(earned)) | set(session.scalars(exchanged_in)))
        expired = {}
        for i in range(0, len(wallets), EXPIRED_READS):
            expired.update(token.expired_balances(wallets[i : i + EXPIRED_READS]))
        due = [wallet for wallet, points in expired.items() if points]
        nonces = Nonces(self.chain, self.chain.operator.address)
        size = min(EXPIRE_BATCH, token.max_expire_size(head.gas_limit, validity))
        for i in range(0, len(due), size):
            with self.sessions() as session:
                nonce = nonces.next(session)
            signed = token.sign_expire(nonce, due[i : i + size], validity, head.base_fee)
            with self.sessions() as session, write_lock(session):
                write = record(session, None, self.chain.operator.address, WriteKind.EXPIRE, nonce, signed)
                write.program_id = None if program_id == programs.DEFAULT_PROGRAM else program_id
                session.commit()
            if not self._broadcast(write, signed):
                return True  # not recorded as done: the next sweep tries again
        with self.sessions() as session, write_lock(session):
            session.add(
                ExpirySweep(
                    program_id=program_id,
                    expired_before=expired_before,
                    members_checked=len(wallets),
                    members_swept=len(due),
                )
            )
            session.commit()
        if due:
            log.info(
                "program %s: sweeping expired points of %d members (lots expiring by %d)",
                program_id, len(due), expired_before,
            )  # fmt: skip
        return bool(due)

    def _housekeeping(self) -> None:
        """Idempotency records are kept for `idempotency_ttl_s` (24 h by default), no longer;
        redemptions left unanswered by their member past a day are declined; used and expired
        member tokens, sign-in nonces and stale sign-in throttles go; purchases whose pending
        period ended are released; members whose tier review is due are reviewed."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self.runtime.settings.idempotency_ttl_s)
        with self.sessions() as session, write_lock(session):
            session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
            redemptions.decline_unanswered(session, now)
            exchanges.decline_unanswered(session, now)
            session.execute(delete(MemberToken).where(MemberToken.expires_at < now - timedelta(days=1)))
            session.execute(delete(SignInNonce).where(SignInNonce.expires_at < now))
            credentials.forget_throttles(session, now)
            session.commit()
        self._release_purchases(now)
        with self.sessions() as session, write_lock(session):
            for program_id in tiers.laddered(session):
                tiers.review_due(session, now, program_id)
            session.commit()
        self.evaluate_challenges()
        try:
            self.close_leaderboards()
        except (ChainUnavailableError, RpcError) as exc:  # the next round tries again
            log.warning("leaderboard periods not closed: %s", exc)

    def evaluate_challenges(self) -> int:
        """Record the challenge completions due, each with its reward."""
        with self.sessions() as session, write_lock(session):
            recorded = challenges.evaluate(session)
            session.commit()
        return recorded

    def close_leaderboards(self) -> int:
        """Close the leaderboard periods that ended and are final, paying their prizes."""
        with self.sessions() as session:  # the chain read first, outside the write lock
            if not leaderboards.any_active(session):
                return 0
            if self._tallies is None:
                self._tallies = Tallies(self.runtime.settings.rpc_url, head_every_s=0)
            periods = leaderboards.due(session, self._tallies, self.runtime.required_confirmations())
        if not periods:
            return 0
        with self.sessions() as session, write_lock(session):
            closed = leaderboards.close(session, periods)
            session.commit()
        return closed

    def _release_purchases(self, now: datetime) -> None:
        """Purchases whose pending period ended are released, a batch per transaction."""
        while True:
            with self.sessions() as session, write_lock(session):
                released = purchases.release_due(session, now)
                session.commit()
            if released < purchases.RELEASE_BATCH:
                return


def _budget_landed(session: Session, write: ChainWrite, direction: int) -> None:
    """A budget change became final (+1: the API may count it, earns go on) or was rolled
    back by a reorg (-1: it is on its way again). A grant adds to the budget, a move to the
    partner's campaigns takes from it."""
    amount = direction * (write.amount_points or 0)
    if write.kind == WriteKind.GRANT_BUDGET:
        values = {
            "budget_to_grant_points": Partner.budget_to_grant_points - amount,
            "budget_points": Partner.budget_points + amount,
        }
    else:
        values = {
            "budget_to_move_points": Partner.budget_to_move_points - amount,
            "budget_points": Partner.budget_points - amount,
        }
    session.execute(
        update(Partner)
        .where(Partner.id == write.partner_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def run_writer(writer: OutboxWriter, stop: threading.Event, name: str = "outbox-writer") -> threading.Thread:
    """Start the writer in a daemon thread."""
    thread = threading.Thread(target=writer.run, args=(stop,), name=name, daemon=True)
    thread.start()
    return thread


def drain(writer: OutboxWriter, timeout_s: float = 60) -> None:
    """Run passes until nothing is left to do (tests, CLI one-shot), the periodic checks
    (reorgs, sweeps) included."""
    writer._timers.clear()
    deadline = time.monotonic() + timeout_s
    while (done := writer.run_once()).progressed or done.in_flight:
        if time.monotonic() > deadline:
            raise TimeoutError("the outbox did not drain in time")
        time.sleep(writer.poll_s)
