"""The outbox's exchange jobs: members' exchanges relayed in batches, the exchange's incoming
budget on each program's token, and settlement (periods closed, payments made or confirmed).

Each is an operator job of `OutboxWriter` (the operator is the exchange's relayer and the
programs' admin; a brand's payment goes from the brand's own account), and follows the
outbox's rules: signed and recorded before it is broadcast, rows claimed by conditional
updates. An exchange batch is estimated before it is signed: an order the chain would refuse is
voided alone with the chain's reason (each order is tried by itself when the batch is refused),
so one bad order never holds up the others.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from loyalty.chain.client import Block
from loyalty.chain.exchange import Order, PointsExchange
from loyalty.db.models import (
    ChainWrite,
    Exchange,
    ExchangeStatus,
    Member,
    Partner,
    PartnerKind,
    Program,
    RateAgreement,
    Redemption,
    Settlement,
    SettlementAction,
    SettlementStatus,
    WriteKind,
    WriteStatus,
)
from loyalty.db.session import write_lock
from loyalty.domain.consent import RedeemConsent, redeem_typed_data, sign_typed_data
from loyalty.errors import ChainRevertError, DomainError, KeyDecryptionError
from loyalty.services import agreements, exchanges, settlement, webhooks
from loyalty.services.redemptions import CONSENT_VALIDITY_S
from loyalty.workers.writes import Nonces, record

if TYPE_CHECKING:
    from loyalty.workers.outbox import OutboxWriter

log = logging.getLogger("loyalty.workers.exchanging")
MAX_ORDERS = 200  # orders per exchangeBatch: the contract's most (and fewer in a block that cannot hold them)
ORDER_GAS_CAP = 70_000  # an order to a first-time holder on the target, with room: what a block must hold per order
BATCH_BASE_GAS = 100_000
# Once a batch under an agreement was estimated, the next go without a dry run, with this much
# more gas per order than the estimate (itself with GAS_MARGIN) gave, and as many orders as fit
# 90% of a block at that rate (the rest wait for the next batch). A batch that reverts, or that
# the node refuses, makes the next one estimated again, order by order if need be.
LEARNED_MARGIN = (5, 4)
MAX_BATCHES_IN_FLIGHT = 8
DEADLINE_MARGIN_S = 120  # an exchange goes only if its consent outlives this
BUDGET_WRITES = (WriteKind.GRANT_EXCHANGE, WriteKind.SET_INCOMING)
SETTLEMENT_WRITES = (WriteKind.CLOSE_PERIOD, WriteKind.SETTLE_PAYMENT, WriteKind.CONFIRM_RECEIPT)
# Reverts no order caused, that the operator or an admin can mend: the exchanges wait (a minute)
# rather than fail.
WAIT_REVERTS = frozenset(
    {"LoyaltyMissingRole", "LoyaltyBudgetExceeded", "LoyaltyPaused", "ExchangeMissingRole", "OutOfGas"}
)
WAIT_S = 60.0
NEVER = 2**63  # a chain time no period ends by


def _exchange(writer: OutboxWriter) -> PointsExchange | None:
    try:
        return writer.runtime.exchange()
    except DomainError:  # no exchange configured: nothing to do
        return None


def in_flight(session: Session, *kinds: WriteKind) -> list[ChainWrite]:
    return list(
        session.scalars(select(ChainWrite).where(ChainWrite.kind.in_(kinds), ChainWrite.status == WriteStatus.SENT))
    )


# ------------------------------------------------------------------------------ exchanges
def send_exchanges(writer: OutboxWriter, head: Block) -> bool:
    """Relay reserved exchanges, a batch per agreement, at most one in flight per member."""
    exchange = _exchange(writer)
    if exchange is None:
        return False
    with writer.sessions() as session:
        flying = in_flight(session, WriteKind.EXCHANGE_BATCH, WriteKind.REDEEM, *BUDGET_WRITES)
        batches = [w for w in flying if w.kind == WriteKind.EXCHANGE_BATCH]
        if len(batches) >= MAX_BATCHES_IN_FLIGHT:
            return False
        flying_ids = [w.id for w in flying]
        busy = set(session.scalars(select(Exchange.member_id).where(Exchange.write_id.in_(flying_ids))))
        busy |= set(session.scalars(select(Redemption.member_id).where(Redemption.write_id.in_(flying_ids))))
        # A target whose incoming budget is being set waits: the budget is set as a whole.
        granting = {w.program_id for w in flying if w.kind in BUDGET_WRITES}
        granting |= set(session.scalars(select(Program.id).where(Program.incoming_to_grant_points > 0)))
        waiting = session.execute(
            select(Exchange, Member)
            .join(Member, Member.id == Exchange.member_id)
            .where(Exchange.status == ExchangeStatus.RESERVED, Exchange.write_id.is_(None))
            .order_by(Exchange.id)
        ).all()
    most = min(MAX_ORDERS, head.gas_limit * 9 // 10 // ORDER_GAS_CAP)
    groups: dict[int, list[tuple[Exchange, Member]]] = defaultdict(list)
    for row, member in waiting:  # one spend per member in flight, whatever the agreement (the nonce)
        if member.id in busy or row.target_program_id in granting:
            continue
        if len(groups[row.agreement_id]) < most:
            groups[row.agreement_id].append((row, member))
            busy.add(member.id)
    sent = False
    now = time.monotonic()
    ready = [(a, g) for a, g in groups.items() if writer._exchange_hold.get(a, 0.0) <= now]
    for agreement_row_id, group in ready[: MAX_BATCHES_IN_FLIGHT - len(batches)]:
        sent |= writer._guarded(None, partial(_send_batch, writer, exchange, head, agreement_row_id, group), False)
    return sent


def _send_batch(
    writer: OutboxWriter,
    exchange: PointsExchange,
    head: Block,
    agreement_row_id: int,
    group: list[tuple[Exchange, Member]],
) -> bool:
    with writer.sessions() as session:
        row = session.get(RateAgreement, agreement_row_id)
        assert row is not None
        source = session.get(Program, row.source_program_id)
        assert source is not None and source.token_address is not None
    terms = agreements.terms_of(row)
    token = writer.runtime.token_at(source.token_address)
    states = token.members_state([m.wallet_address for _, m in group], head.number)
    custodial = [(r, m) for r, m in group if m.custodial]
    if custodial:
        with writer.sessions() as session, write_lock(session):
            first_ref = exchanges.take_refs(session, row.target_program_id, len(custodial))
            session.commit()
    orders: dict[int, Order] = {}
    voided: dict[int, str] = {}
    for r, m in group:
        balance, nonce = states[m.wallet_address]
        if balance < r.amount_in:
            voided[r.id] = f"insufficient_points: the member holds {balance} points; the exchange takes {r.amount_in}"
        elif m.custodial:
            consent = RedeemConsent(
                m.wallet_address, exchange.address, r.amount_in, int(row.agreement_id, 16), first_ref, nonce,
                head.timestamp + CONSENT_VALIDITY_S,
            )  # fmt: skip
            first_ref += 1
            typed = redeem_typed_data(
                consent, chain_id=writer.chain.chain_id, token_address=token.address, token_name=token.name
            )
            try:
                key = writer.custody.open(m.wallet_address, m.wallet_key_sealed or b"")
            except KeyDecryptionError as exc:
                voided[r.id] = f"consent_stale: {exc}"
                continue
            signature = sign_typed_data(typed, key.key)
            orders[r.id] = Order(m.wallet_address, r.amount_in, consent.ref, consent.deadline, signature)
        else:
            assert r.nonce is not None and r.deadline is not None and r.ref is not None
            if r.deadline < head.timestamp + DEADLINE_MARGIN_S:
                voided[r.id] = f"consent_expired: the consent expires at {r.deadline}, too soon to be mined"
            elif r.nonce < nonce:
                voided[r.id] = (
                    f"consent_stale: the member's nonce is {nonce}, the consent was signed for {r.nonce} "
                    "(a redemption or another exchange used it)"
                )
            elif r.nonce == nonce:  # (a later nonce waits for the spends before it)
                orders[r.id] = Order(m.wallet_address, r.amount_in, r.ref, r.deadline, r.signature or b"")
    gas = None
    learned = writer._exchange_gas.get(agreement_row_id)
    if learned is not None and orders:  # the agreement's batches go through: no dry run (see `LEARNED_MARGIN`)
        fits = max(1, (head.gas_limit * 9 // 10 - BATCH_BASE_GAS) // learned)
        for i in sorted(orders, key=lambda i: orders[i].ref)[fits:]:  # the rest go in the next batch
            del orders[i]
        gas = BATCH_BASE_GAS + learned * len(orders)
    while orders and gas is None:
        chosen = sorted(orders, key=lambda i: orders[i].ref)  # the target takes refs in order
        estimate = exchange.batch_gas(terms, [orders[i] for i in chosen])
        if not isinstance(estimate, ChainRevertError):
            gas = estimate
            per_order = max(0, estimate - BATCH_BASE_GAS) // len(chosen) * LEARNED_MARGIN[0] // LEARNED_MARGIN[1]
            if BATCH_BASE_GAS + per_order <= head.gas_limit * 9 // 10:
                writer._exchange_gas[agreement_row_id] = per_order
            break
        alone = (
            {i: exchange.batch_gas(terms, [orders[i]]) for i in chosen} if len(chosen) > 1 else {chosen[0]: estimate}
        )
        refused = {i: str(e) for i, e in alone.items() if isinstance(e, ChainRevertError)}
        waits = [e for e in alone.values() if isinstance(e, ChainRevertError) and e.error in WAIT_REVERTS]
        if waits:
            writer._exchange_hold[agreement_row_id] = time.monotonic() + WAIT_S
            if writer._due(f"exchange-wait:{agreement_row_id}", WAIT_S):
                log.warning("exchanges under agreement %s wait: %s", row.id, waits[0])
            orders = {}
            break
        if not refused:  # each goes alone but not all together (a credit limit): the first half goes
            for i in chosen[len(chosen) // 2 :]:
                del orders[i]
            continue
        voided.update(refused)
        for i in refused:
            del orders[i]
    if voided:
        with writer.sessions() as session, write_lock(session):
            for exchange_id, error in voided.items():
                exchanges.void(session, [exchange_id], error)
            session.commit()
        log.warning("%d exchanges under agreement %s voided: %s", len(voided), row.id, next(iter(voided.values())))
    if not orders or gas is None:
        return bool(voided)
    nonces = Nonces(writer.chain, writer.chain.operator.address)
    with writer.sessions() as session:
        nonce = nonces.next(session)
    chosen = sorted(orders, key=lambda i: orders[i].ref)
    signed = exchange.sign_exchange_batch(nonce, head.base_fee, terms, [orders[i] for i in chosen], gas)
    with writer.sessions() as session, write_lock(session):
        write = record(session, None, writer.chain.operator.address, WriteKind.EXCHANGE_BATCH, nonce, signed, row.id)
        write.program_id = row.target_program_id
        taken = session.execute(
            update(Exchange)
            .where(Exchange.id.in_(chosen), Exchange.write_id.is_(None), Exchange.status == ExchangeStatus.RESERVED)
            .values(write_id=write.id)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != len(chosen):  # type: ignore[attr-defined]  # another writer's, or answered since
            session.rollback()
            nonces.release(nonce)
            return False
        wallets = {r.id: m.wallet_address for r, m in group}
        session.execute(
            update(Exchange),
            [
                {"id": i, "ref": orders[i].ref, "deadline": orders[i].deadline, "signature": orders[i].consent,
                 "nonce": states[wallets[i]][1]}
                for i in chosen
            ],
        )  # fmt: skip
        session.commit()
    return writer._broadcast(write, signed)


# ------------------------------------------------------------------------- roles and budget
def agreement_signers(writer: OutboxWriter, head: Block) -> bool:
    """Set on the exchange the agreement signers brands registered (or their issuer accounts
    again), each from the brand's own account: only a brand may name its signer. One the chain
    does not show after its write (a revert) is sent again a minute later. One read of the
    database a pass; the chain is read only for a brand whose signer it was not seen to hold."""
    exchange = _exchange(writer)
    if exchange is None:
        return False
    with writer.sessions() as session:
        if writer._signer_brands is None:  # once: brands that ever set a signer (one may be back to none)
            writer._signer_brands = set(
                session.scalars(select(ChainWrite.partner_id).distinct().where(ChainWrite.kind == WriteKind.SET_SIGNER))
            )
        brands = session.scalars(
            select(Partner).where(
                Partner.kind == PartnerKind.BRAND,
                Partner.provisioned_at.is_not(None),
                or_(Partner.agreement_signer.is_not(None), Partner.id.in_(writer._signer_brands)),
            )
        ).all()
        busy = {w.partner_id for w in in_flight(session, WriteKind.SET_SIGNER)}
    writer._signer_brands |= {b.id for b in brands}
    progressed = False
    for brand in brands:
        wanted = agreements.signer_of(brand)
        held = writer._signer_hold.get(brand.id)
        if brand.id in busy or writer._signers_set.get(brand.id) == wanted:
            continue
        if exchange.signer_of(brand.issuer_address) == wanted:
            writer._signers_set[brand.id] = wanted
            continue
        if held is not None and held[0] == wanted and held[1] > time.monotonic():
            continue
        with writer.sessions() as session:
            nonce = Nonces(writer.chain, brand.issuer_address).next(session)
        signed = exchange.sign_set_signer(writer._issuer(brand), nonce, head.base_fee, brand.agreement_signer)
        with writer.sessions() as session, write_lock(session):
            write = record(session, brand.id, brand.issuer_address, WriteKind.SET_SIGNER, nonce, signed)
            session.commit()
        writer._signer_hold[brand.id] = (wanted, time.monotonic() + WAIT_S)
        writer._signers_set.pop(brand.id, None)
        log.info("partner %s: agreements signed by %s from now on", brand.id, wanted)
        progressed = True
        writer._broadcast(write, signed)
    return progressed


def signers_in_force(writer: OutboxWriter, exchange: PointsExchange, payer_id: int, payee_id: int) -> bool:
    """Whether the exchange takes both brands' signatures from the signers they registered
    (a registration waits while one is on its way)."""
    with writer.sessions() as session:
        brands = session.scalars(select(Partner).where(Partner.id.in_((payer_id, payee_id)))).all()
    return all(exchange.signer_of(b.issuer_address) == agreements.signer_of(b) for b in brands)


def exchange_roles(writer: OutboxWriter, head: Block) -> bool:
    """Make the exchange an issuer of every program an agreement exchanges out of or into: its
    `redeem` on the source and its `earn` on the target both need the role (with no budget, it
    can only burn with members' consent; the target's incoming budget is granted apart)."""
    exchange = _exchange(writer)
    if exchange is None:
        return False
    with writer.sessions() as session:
        wanted = set()
        for source, target in session.execute(
            select(RateAgreement.source_program_id, RateAgreement.target_program_id).where(
                RateAgreement.exchange_address == exchange.address
            )
        ):
            wanted |= {source, target}
        wanted -= writer._exchange_issuer_of
        if not wanted:
            return False
        busy = {w.program_id for w in in_flight(session, WriteKind.GRANT_EXCHANGE)}
        programs = session.scalars(select(Program).where(Program.id.in_(wanted - busy))).all()
    progressed = False
    nonces = Nonces(writer.chain, writer.chain.operator.address)
    for program in programs:
        if program.token_address is None or writer._grant_hold.get(-program.id, 0.0) > time.monotonic():
            continue
        token = writer.runtime.token_at(program.token_address)
        if token.is_issuer(exchange.address):
            writer._exchange_issuer_of.add(program.id)
            continue
        with writer.sessions() as session:
            nonce = nonces.next(session)
        signed = token.sign_grant_issuer(nonce, exchange.address, head.base_fee)
        with writer.sessions() as session, write_lock(session):
            write = record(session, None, writer.chain.operator.address, WriteKind.GRANT_EXCHANGE, nonce, signed)
            write.program_id = program.id
            session.commit()
        log.info("program %s: the exchange made an issuer of its token", program.id)
        progressed = True
        if not writer._broadcast(write, signed):
            break
    return progressed


def incoming_budgets(writer: OutboxWriter, head: Block) -> bool:
    """Carry the admin's grants of incoming budget on-chain: the exchange made an issuer of the
    program's token (once), then its budget there set to what is left + the grant, while no
    exchange into the program is in flight (so what is left cannot change under it)."""
    exchange = _exchange(writer)
    if exchange is None:
        return False
    with writer.sessions() as session:
        programs = session.scalars(
            select(Program).where(Program.incoming_to_grant_points > 0, Program.token_address.is_not(None))
        ).all()
        if not programs:
            return False
        busy = {w.program_id for w in in_flight(session, WriteKind.EXCHANGE_BATCH, *BUDGET_WRITES)}
    progressed = False
    nonces = Nonces(writer.chain, writer.chain.operator.address)
    for program in programs:
        if program.id in busy or writer._grant_hold.get(-program.id, 0.0) > time.monotonic():
            continue
        assert program.token_address is not None
        token = writer.runtime.token_at(program.token_address)
        with writer.sessions() as session:
            nonce = nonces.next(session)
        if not token.is_issuer(exchange.address):
            kind, amount = WriteKind.GRANT_EXCHANGE, None
            signed = token.sign_grant_issuer(nonce, exchange.address, head.base_fee)
        else:
            kind, amount = WriteKind.SET_INCOMING, int(program.incoming_to_grant_points)
            left = token.issue_budget(exchange.address)
            signed = token.sign_set_budget(nonce, exchange.address, left + amount, head.base_fee)
        with writer.sessions() as session, write_lock(session):
            write = record(session, None, writer.chain.operator.address, kind, nonce, signed)
            write.program_id, write.amount_points = program.id, amount
            session.commit()
        log.info("program %s: %s for the exchange (%s points)", program.id, kind, amount)
        progressed = True
        if not writer._broadcast(write, signed):
            break
    return progressed


def incoming_landed(session: Session, write: ChainWrite, direction: int) -> None:
    """A grant of incoming budget is final (+1) or a reorg took it away (-1)."""
    amount = direction * (write.amount_points or 0)
    session.execute(
        update(Program)
        .where(Program.id == write.program_id)
        .values(
            incoming_to_grant_points=Program.incoming_to_grant_points - amount,
            incoming_budget_points=Program.incoming_budget_points + amount,
        )
        .execution_options(synchronize_session=False)
    )


# ------------------------------------------------------------------------------ settlement
def close_ended_periods(writer: OutboxWriter, head: Block) -> bool:
    """Close the oldest open period once it has ended, of the service's own accord, when any
    exchange was made in it or after it (the empty periods before such a one close too:
    periods close in order). Unclosed, a period's debts never come due, and a payer could
    exchange on without ever settling; a brand need not ask. Reads the chain only once
    exchanges were made, and then only after the oldest open period's end (or an exchange
    final since); a close that failed is asked again at once, then after a minute, two, four,
    up to an hour."""
    exchange = _exchange(writer)
    if exchange is None or head.timestamp < writer._period_ends_at.get(exchange.address, 0):
        return False
    with writer.sessions() as session:
        latest = session.scalar(  # the latest exchange's block time
            select(func.max(ChainWrite.mined_at))
            .join(RateAgreement, RateAgreement.id == ChainWrite.ref)
            .where(
                ChainWrite.kind == WriteKind.EXCHANGE_BATCH,
                ChainWrite.status == WriteStatus.CONFIRMED,
                RateAgreement.exchange_address == exchange.address,
            )
        )
        closing = session.scalar(
            select(Settlement.id)
            .where(
                Settlement.exchange_address == exchange.address,
                Settlement.action == SettlementAction.CLOSE,
                Settlement.status.in_((SettlementStatus.QUEUED, SettlementStatus.SENT)),
            )
            .limit(1)
        )
    if latest is None:  # nothing exchanged yet: quiet until an exchange is final (`_finalize` wakes it)
        writer._period_ends_at[exchange.address] = NEVER
        return False
    if closing is not None or writer._close_hold.get(exchange.address, 0.0) > time.monotonic():
        return False  # one close at a time (`send_settlements` sends it)
    first = exchange.next_period_to_close()
    ends_at = exchange.period_facts(first)[0]
    if head.timestamp < ends_at:
        writer._period_ends_at[exchange.address] = ends_at
        return False
    if latest < (exchange.period_facts(first - 1)[0] if first else 0):
        # nothing exchanged since the oldest open period began: look again when the current one ends
        writer._period_ends_at[exchange.address] = exchange.period_facts(exchange.current_period())[0]
        return False
    with writer.sessions() as session, write_lock(session):
        failed = session.scalar(
            select(func.count()).where(
                Settlement.exchange_address == exchange.address,
                Settlement.period == first,
                Settlement.action == SettlementAction.CLOSE,
                Settlement.status == SettlementStatus.FAILED,
            )
        )
        step = settlement.close_due(session, exchange.address, first)
        session.commit()
    if step is None:
        return False
    backoff = min(WAIT_S * 2 ** (failed - 1), 3_600.0) if failed else 0.0
    writer._close_hold[exchange.address] = time.monotonic() + backoff
    log.info("closing settlement period %s of %s: it ended at %s", first, exchange.address, ends_at)
    return True


def send_settlements(writer: OutboxWriter, head: Block) -> bool:
    """Send what brands asked for: a period closed (by the operator), a payment made (by the
    debtor: its settlement tokens approved to the exchange first, once) or confirmed (by the
    creditor). One the chain shows done already (someone else did it) is done."""
    exchange = _exchange(writer)
    if exchange is None:
        return False
    with writer.sessions() as session:
        queued = session.scalars(
            select(Settlement).where(Settlement.status == SettlementStatus.QUEUED).order_by(Settlement.id)
        ).all()
        if not queued:
            return False
        partners = {
            p.id: p for p in session.scalars(select(Partner).where(Partner.id.in_({q.partner_id for q in queued})))
        }
    progressed = False
    next_to_close = exchange.next_period_to_close()
    for step in queued:
        if step.action == SettlementAction.CLOSE:
            if step.period < next_to_close:
                _settled(writer, step.id, None)
                progressed = True
                continue
            if step.period > next_to_close or head.timestamp < exchange.period_facts(step.period)[0]:
                continue  # earlier periods close first; this one once it has ended
            sender, account, kinds = str(writer.chain.operator.address), writer.chain.operator, [WriteKind.CLOSE_PERIOD]
        else:
            payments = exchange.payments_of(step.period)
            if step.payment_index < len(payments) and payments[step.payment_index][1]:
                _settled(writer, step.id, None)
                progressed = True
                continue
            partner = partners[step.partner_id or 0]
            sender, account = partner.issuer_address, writer._issuer(partner)
            if step.action == SettlementAction.CONFIRM:
                kinds = [WriteKind.CONFIRM_RECEIPT]
            elif exchange.allowance(sender) < int(step.amount):
                kinds = [WriteKind.SETTLE_APPROVE, WriteKind.SETTLE_PAYMENT]
            else:
                kinds = [WriteKind.SETTLE_PAYMENT]
        nonces = Nonces(writer.chain, sender)
        for kind in kinds:
            with writer.sessions() as session:
                nonce = nonces.next(session)
            if kind == WriteKind.CLOSE_PERIOD:
                signed = exchange.sign_close(nonce, head.base_fee, step.period)
            elif kind == WriteKind.SETTLE_APPROVE:
                signed = exchange.sign_approve(account, nonce, head.base_fee)
            elif kind == WriteKind.SETTLE_PAYMENT:
                signed = exchange.sign_settle(account, nonce, head.base_fee, step.period, step.payment_index)
            else:
                signed = exchange.sign_confirm(account, nonce, head.base_fee, step.period, step.payment_index)
            with writer.sessions() as session, write_lock(session):
                write = record(session, step.partner_id, sender, kind, nonce, signed, step.id)
                if kind != WriteKind.SETTLE_APPROVE:
                    changed = session.execute(
                        update(Settlement)
                        .where(Settlement.id == step.id, Settlement.status == SettlementStatus.QUEUED)
                        .values(status=SettlementStatus.SENT, write_id=write.id)
                    )
                    if changed.rowcount != 1:  # type: ignore[attr-defined]
                        session.rollback()
                        nonces.release(nonce)
                        break
                session.commit()
            progressed = True
            if not writer._broadcast(write, signed):
                break
    return progressed


def _settled(writer: OutboxWriter, step_id: int, error: str | None) -> None:
    with writer.sessions() as session, write_lock(session):
        settlement_landed(session, step_id, error)
        session.commit()


def settlement_landed(session: Session, step_id: int, error: str | None) -> None:
    """A settlement step is done, or failed with the chain's reason; a period closed is news
    to every endpoint that asks for it (it is public on the chain)."""
    changed = session.execute(
        update(Settlement)
        .where(Settlement.id == step_id, Settlement.status.in_((SettlementStatus.QUEUED, SettlementStatus.SENT)))
        .values(status=SettlementStatus.DONE if error is None else SettlementStatus.FAILED, error=error)
    )
    step = session.get(Settlement, step_id)
    if changed.rowcount == 1 and error is None and step is not None and step.action == SettlementAction.CLOSE:  # type: ignore[attr-defined]
        webhooks.emit(
            session,
            "settlement.period_closed",
            [webhooks.Happened(f"period:{step.exchange_address}:{step.period}", None, None,
                               {"exchange_address": step.exchange_address, "period": step.period})],
        )  # fmt: skip


def settlement_requeued(session: Session, step_id: int, status: SettlementStatus) -> None:
    """A settlement step's write was dropped (queued again) or reorged away (sent again)."""
    session.execute(update(Settlement).where(Settlement.id == step_id).values(status=status))
