"""The exchange re-derived from the chain alone: every agreement, exchange, period and payment
of a `PointsExchange`, checked against the rules the contract promises (IPointsExchange).

`ExchangeLedger.apply` replays the exchange's logs in order, given the logs its transactions
left on the tokens and the settlement token, and the agreements' registration calls (for the
brands' signatures); `verify_exchange` fetches all of that from a node. The rate math and the
netting are `domain.exchange`'s, the same functions the backend quotes with.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from loyalty.audit.events import EARNED, REDEEMED, TRANSFER, Log, address, topic, words
from loyalty.audit.ledger import Discrepancy
from loyalty.audit.rpc import Rpc
from loyalty.audit.verify import selector
from loyalty.domain.consent import recover_signer
from loyalty.domain.exchange import Agreement, QuoteRefused, agreement_typed_data, payments, quote

AGREEMENT_TUPLE = "(address,address,address,address,uint32,uint32,uint64,uint64,uint64,uint64,uint64,uint64,uint128,uint128,uint64,uint64,uint256)"


AGREEMENT_REGISTERED = topic(f"AgreementRegistered(bytes32,address,address,{AGREEMENT_TUPLE})")
AGREEMENT_REVOKED = topic("AgreementRevoked(bytes32,address)")
AGREEMENT_SIGNER_SET = topic("AgreementSignerSet(address,address)")
PROGRAM_BRAND_SET = topic("ProgramBrandSet(address,address,bool,address)")
EXCHANGED = topic("Exchanged(bytes32,address,uint256,uint256,uint256,uint256,uint256,uint256)")
PERIOD_CLOSED = topic("PeriodClosed(uint256,uint256,uint256)")
PAYMENT_DUE = topic("PaymentDue(uint256,uint256,address,address,uint256,uint256)")
PAYMENT_SETTLED = topic("PaymentSettled(uint256,uint256,address,address,uint256,bool)")
REGISTER_SELECTOR = keccak(text=f"registerAgreement({AGREEMENT_TUPLE},bytes,bytes)")[:4]

EXCHANGE_CHECKS = {
    "agreements_signed": "every agreement was registered with the payer's and the payee's signatures, recovered from the registering call, by their agreement signers at the time, and its payee allowed by the target's admin",
    "agreements_in_force": "every exchange used a registered agreement, not revoked, inside its dates, in the period its block falls in",
    "exchange_amounts": "every exchange's points out and debt owed follow its agreement exactly (rate rounded down, bonus, minimum, step, cap per exchange)",
    "member_caps": "no member exchanged more under an agreement in a period than its cap",
    "burn_and_mint": "every exchange burned the member's points on the source (the exchange relaying, the agreement as reward, the same ref) and minted them on the target, in its own transaction",
    "debts": "every exchange's debt is the period's running debt of payer to payee, within the agreement's credit limit",
    "payers_not_overdue": "no payer exchanged while one of its payments was past due",
    "payments": "every closed period asked for the payments that net its debts, and each settled payment was paid in the settlement token or confirmed by its creditor, once",
}


@dataclass(frozen=True)
class Periods:
    """The exchange's settlement calendar."""

    start: int
    length: int
    window: int

    def at(self, timestamp: int) -> int:
        return (timestamp - self.start) // self.length

    def due(self, period: int) -> int:
        return self.start + (period + 1) * self.length + self.window


@dataclass
class PeriodFigures:
    """A period's debts (payer, payee) -> owed, and once closed, its payments and which are settled."""

    debts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    closed: bool = False
    payments: list[tuple[str, str, int]] = field(default_factory=list)
    settled: dict[int, bool] = field(default_factory=dict)  # index -> off-chain

    def net(self) -> dict[str, int]:
        net: dict[str, int] = defaultdict(int)
        for (payer, payee), owed in self.debts.items():
            net[payer] -= owed
            net[payee] += owed
        return dict(net)


class ExchangeLedger:
    """Replays an exchange's logs; what breaks a rule becomes a `Discrepancy`."""

    def __init__(self, exchange: str, chain_id: int, periods: Periods, settlement_token: str) -> None:
        self.exchange, self.chain_id, self.periods = to_checksum_address(exchange), chain_id, periods
        self.settlement_token = to_checksum_address(settlement_token)
        self.agreements: dict[str, Agreement] = {}  # id (0x hex) -> terms
        self.revoked: set[str] = set()
        self.signers: dict[str, str] = {}
        self.program_brands: dict[tuple[str, str], bool] = {}  # (token, brand) -> allowed
        self.periods_seen: dict[int, PeriodFigures] = defaultdict(PeriodFigures)
        self.used: dict[tuple[str, str, int], int] = defaultdict(int)
        self.exchanges = 0
        self.exchanged: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # id -> [in, out]
        self.discrepancies: list[Discrepancy] = []
        self.checked: dict[str, int] = defaultdict(int)

    def flag(self, check: str, detail: str, log: Log | None = None) -> None:
        self.discrepancies.append(
            Discrepancy(check, detail, log.tx_hash if log else None, log.block_number if log else None)
        )

    def signer_of(self, brand: str) -> str:
        return self.signers.get(brand, brand)

    def apply(
        self,
        logs: Iterable[Log],
        timestamps: Mapping[int, int],
        tx_logs: Mapping[str, Sequence[dict[str, Any]]],
        registrations: Mapping[str, str],
    ) -> None:
        """Replay the exchange's `logs` in order. `tx_logs` holds every log of each transaction
        (tokens' and the settlement token's included, each tagged with its `address`);
        `registrations` the input of each registering transaction."""
        for log in logs:
            topic = log.topics[0] if log.topics else None
            stamp = log.timestamp if log.timestamp is not None else timestamps[log.block_number]
            if topic == AGREEMENT_REGISTERED:
                self._registered(log, registrations.get(log.tx_hash))
            elif topic == AGREEMENT_REVOKED:
                self.revoked.add(log.topics[1])
            elif topic == PROGRAM_BRAND_SET:
                self.program_brands[(address(log.topics[1]), address(log.topics[2]))] = bool(words(log.data)[0])
            elif topic == AGREEMENT_SIGNER_SET:
                self.signers[address(log.topics[1])] = address(log.data[2:66])
            elif topic == EXCHANGED:
                self._exchanged(log, stamp, tx_logs.get(log.tx_hash, ()))
            elif topic == PAYMENT_DUE:
                self._payment_due(log)
            elif topic == PERIOD_CLOSED:
                self._closed(log)
            elif topic == PAYMENT_SETTLED:
                self._settled(log, tx_logs.get(log.tx_hash, ()))

    # ------------------------------------------------------------------------------ events
    def _registered(self, log: Log, call_input: str | None) -> None:
        id_ = log.topics[1]
        terms = Agreement.from_tuple(
            to_checksum_address(v) if isinstance(v, str) else v
            for v in abi_decode([AGREEMENT_TUPLE], bytes.fromhex(log.data[2:]))[0]
        )
        self.agreements[id_] = terms
        self.checked["agreements_signed"] += 1
        if not self.program_brands.get((terms.target, terms.payee)):
            self.flag(
                "agreements_signed",
                f"agreement {id_}: its payee {terms.payee} was not allowed by {terms.target}'s admin",
                log,
            )
        typed = agreement_typed_data(terms, chain_id=self.chain_id, exchange_address=self.exchange)
        data = bytes.fromhex((call_input or "0x")[2:])
        if data[:4] != REGISTER_SELECTOR:
            self.flag(
                "agreements_signed",
                f"agreement {id_}: the transaction is not a direct registerAgreement call, its signatures cannot be read",
                log,
            )
            return
        called, payer_signature, payee_signature = abi_decode([AGREEMENT_TUPLE, "bytes", "bytes"], data[4:])
        if tuple(to_checksum_address(v) if isinstance(v, str) else v for v in called) != terms.as_tuple():
            self.flag("agreements_signed", f"agreement {id_}: the registered terms differ from the call's", log)
        for brand, signature in ((terms.payer, payer_signature), (terms.payee, payee_signature)):
            signer = recover_signer(typed, bytes(signature))
            if signer != self.signer_of(brand):
                self.flag(
                    "agreements_signed",
                    f"agreement {id_}: {brand}'s signature recovers to {signer}, not its signer {self.signer_of(brand)}",
                    log,
                )

    def _exchanged(self, log: Log, stamp: int, in_tx: Sequence[dict[str, Any]]) -> None:
        id_, member = log.topics[1], address(log.topics[2])
        period = int(log.topics[3], 16)
        amount_in, amount_out, ref, owed, debt = words(log.data)
        self.exchanges += 1
        terms = self.agreements.get(id_)
        self.checked["agreements_in_force"] += 1
        if terms is None:
            self.flag("agreements_in_force", f"exchange by {member} under agreement {id_}, never registered", log)
            return
        if id_ in self.revoked:
            self.flag("agreements_in_force", f"exchange by {member} under agreement {id_}, revoked before", log)
        if not terms.valid_from <= stamp < terms.valid_until:
            self.flag(
                "agreements_in_force",
                f"exchange by {member} at {stamp}, outside agreement {id_}'s [{terms.valid_from}, {terms.valid_until})",
                log,
            )
        if period != self.periods.at(stamp):
            self.flag(
                "agreements_in_force",
                f"exchange by {member} counted in period {period}, its block is in {self.periods.at(stamp)}",
                log,
            )
        self.checked["exchange_amounts"] += 1
        try:
            expected = quote(terms, amount_in)
        except QuoteRefused as refused:
            self.flag(
                "exchange_amounts", f"exchange of {amount_in} by {member}: the agreement refuses it ({refused})", log
            )
            expected = (amount_out, owed)
        if expected != (amount_out, owed):
            self.flag(
                "exchange_amounts",
                f"exchange of {amount_in} by {member}: gave {amount_out} owing {owed}, the agreement gives {expected[0]} owing {expected[1]}",
                log,
            )
        self.exchanged[id_][0] += amount_in
        self.exchanged[id_][1] += amount_out
        if terms.max_in_per_member_period:
            self.checked["member_caps"] += 1
            key = (id_, member, period)
            self.used[key] += amount_in
            if self.used[key] > terms.max_in_per_member_period:
                self.flag(
                    "member_caps",
                    f"{member} exchanged {self.used[key]} under {id_} in period {period}, over the cap {terms.max_in_per_member_period}",
                    log,
                )
        self._check_burn_and_mint(log, terms, id_, member, amount_in, amount_out, ref, in_tx)
        figures = self.periods_seen[period]
        self.checked["debts"] += 1
        running = figures.debts.get((terms.payer, terms.payee), 0) + owed
        if owed:  # a free exchange owes nothing: the contract lists no pair for it
            figures.debts[(terms.payer, terms.payee)] = running
        if debt != running:
            self.flag(
                "debts",
                f"exchange by {member}: debt {debt} of {terms.payer} to {terms.payee}, the running debt is {running}",
                log,
            )
        if terms.credit_limit and running > terms.credit_limit:
            self.flag(
                "debts",
                f"{terms.payer} owes {terms.payee} {running} in period {period}, over the credit limit {terms.credit_limit}",
                log,
            )
        self.checked["payers_not_overdue"] += 1
        for closed, seen in self.periods_seen.items():
            late = [
                i for i, (debtor, _, _) in enumerate(seen.payments) if debtor == terms.payer and i not in seen.settled
            ]
            if seen.closed and late and stamp > self.periods.due(closed):
                self.flag(
                    "payers_not_overdue",
                    f"{terms.payer} exchanged as payer with payment {late[0]} of period {closed} past due",
                    log,
                )
                break

    def _check_burn_and_mint(
        self, log: Log, terms: Agreement, id_: str, member: str, amount_in: int, amount_out: int, ref: int,
        in_tx: Sequence[dict[str, Any]],
    ) -> None:  # fmt: skip
        self.checked["burn_and_mint"] += 1
        burned = minted = False
        for where, other in _tagged(in_tx):
            if where == terms.source and other.topics[0] == REDEEMED:
                m, issuer, reward = address(other.topics[1]), address(other.topics[2]), int(other.topics[3], 16)
                amount, redeemed_ref = words(other.data)
                burned |= (m, issuer, reward, amount, redeemed_ref) == (
                    member,
                    self.exchange,
                    int(id_, 16),
                    amount_in,
                    ref,
                )
            elif where == terms.target and other.topics[0] == EARNED:
                m, issuer = address(other.topics[1]), address(other.topics[2])
                amount, earned_ref, _ = words(other.data)
                minted |= (m, issuer, amount, earned_ref) == (member, self.exchange, amount_out, ref)
        if not (burned and minted):
            missing = " and ".join(
                w for w, ok in (("the burn on the source", burned), ("the mint on the target", minted)) if not ok
            )
            self.flag("burn_and_mint", f"exchange by {member} (ref {ref}): {missing} is not in its transaction", log)

    def _payment_due(self, log: Log) -> None:
        period = int(log.topics[1], 16)
        index, amount, due = words(log.data)
        figures = self.periods_seen[period]
        if index != len(figures.payments) or due != self.periods.due(period):
            self.flag(
                "payments",
                f"payment {index} of period {period}: out of order or due {due}, not {self.periods.due(period)}",
                log,
            )
        figures.payments.append((address(log.topics[2]), address(log.topics[3]), amount))

    def _closed(self, log: Log) -> None:
        period = int(log.topics[1], 16)
        brands, count = words(log.data)
        figures = self.periods_seen[period]
        self.checked["payments"] += 1
        expected = payments({pair: owed for pair, owed in figures.debts.items() if owed})
        if figures.payments != expected or count != len(expected) or brands != len(figures.net()):
            self.flag("payments", f"period {period} asked for {figures.payments}; its debts net to {expected}", log)
        figures.closed = True

    def _settled(self, log: Log, in_tx: Sequence[dict[str, Any]]) -> None:
        period = int(log.topics[1], 16)
        index, amount, off_chain = words(log.data)
        debtor, creditor = address(log.topics[2]), address(log.topics[3])
        figures = self.periods_seen[period]
        self.checked["payments"] += 1
        if index >= len(figures.payments) or figures.payments[index] != (debtor, creditor, amount):
            self.flag("payments", f"settled payment {index} of period {period} was never asked for", log)
            return
        if index in figures.settled:
            self.flag("payments", f"payment {index} of period {period} settled twice", log)
        figures.settled[index] = bool(off_chain)
        if off_chain:
            return
        for where, other in _tagged(in_tx):
            if (
                where == self.settlement_token
                and other.topics[0] == TRANSFER
                and (address(other.topics[1]), address(other.topics[2]), words(other.data)[0])
                == (debtor, creditor, amount)
            ):
                return
        self.flag(
            "payments",
            f"payment {index} of period {period}: no transfer of {amount} from {debtor} to {creditor} in its transaction",
            log,
        )

    # ------------------------------------------------------------------------------ figures
    def failures(self) -> dict[str, int]:
        found: dict[str, int] = defaultdict(int)
        for discrepancy in self.discrepancies:
            found[discrepancy.check] += 1
        return found


def _tagged(in_tx: Sequence[dict[str, Any]]) -> Iterable[tuple[str, Log]]:
    """A transaction's logs (as its receipt holds them) with the contract that emitted each."""
    for raw in in_tx:
        if raw.get("topics"):
            yield to_checksum_address(raw["address"]), Log.of(raw)


@dataclass
class ExchangeAudit:
    """What `verify_exchange` found, as of `block_number`."""

    exchange: str
    block_number: int
    ledger: ExchangeLedger
    checks: list[tuple[str, str, int, int]]  # (name, description, checked, failed)

    @property
    def clean(self) -> bool:
        return not self.ledger.discrepancies


def read_exchange(rpc: Rpc, exchange: str, block: int) -> tuple[Periods, str]:
    """The exchange's calendar and settlement token, from its views."""
    exchange = to_checksum_address(exchange)
    end0, end1, due0, token = rpc.eth_calls(
        exchange,
        [
            selector("periodEnd(uint256)") + f"{0:064x}",
            selector("periodEnd(uint256)") + f"{1:064x}",
            selector("dueDate(uint256)") + f"{0:064x}",
            selector("settlementToken()"),
        ],
        block,
    )
    first, second, due = (int.from_bytes(b, "big") for b in (end0, end1, due0))
    length = second - first
    return Periods(first - length, length, due - first), to_checksum_address("0x" + token[-20:].hex())


def verify_exchange(rpc: Rpc, exchange: str, from_block: int = 0, to_block: int | None = None) -> ExchangeAudit:
    """Replay `exchange`'s logs from `from_block` to `to_block` (default: latest), with every
    log of its transactions and its registering calls, and check them."""
    block = rpc.block_number() if to_block is None else to_block
    exchange = to_checksum_address(exchange)
    periods, settlement_token = read_exchange(rpc, exchange, block)
    ledger = ExchangeLedger(exchange, rpc.chain_id(), periods, settlement_token)
    for raw in rpc.logs(exchange, from_block, block):
        logs = [Log.of(r) for r in raw]
        hashes = sorted({log.tx_hash for log in logs})
        receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        tx_logs = {h: receipt["logs"] for h, receipt in zip(hashes, receipts, strict=True)}
        registering = sorted({log.tx_hash for log in logs if log.topics and log.topics[0] == AGREEMENT_REGISTERED})
        inputs = {h: str(tx.get("input", "0x")) for h, tx in rpc.transactions(registering).items() if tx}
        untimed = sorted({log.block_number for log in logs if log.timestamp is None})
        ledger.apply(logs, rpc.timestamps(untimed) if untimed else {}, tx_logs, inputs)
    failures = ledger.failures()
    checks = [(name, text, ledger.checked[name], failures.get(name, 0)) for name, text in EXCHANGE_CHECKS.items()]
    return ExchangeAudit(exchange, block, ledger, checks)


def exchange_report(audit: ExchangeAudit) -> dict[str, Any]:
    """The exchange audit as JSON: checks, discrepancies, agreements with what went through
    them, and each period's debts, net positions and payments (settled or not)."""
    ledger = audit.ledger
    return {
        "exchange": audit.exchange,
        "block_number": audit.block_number,
        "clean": audit.clean,
        "checks": [
            {"name": n, "description": d, "checked": c, "failed": f, "status": "pass" if not f else "FAIL"}
            for n, d, c, f in audit.checks
        ],
        "discrepancies": [
            {"check": d.check, "detail": d.detail, "tx_hash": d.tx_hash, "block_number": d.block_number}
            for d in ledger.discrepancies
        ],
        "agreements": [
            {
                "id": id_,
                **{f: getattr(terms, f) for f in terms.__dataclass_fields__},
                "revoked": id_ in ledger.revoked,
                "exchanged_in": ledger.exchanged[id_][0],
                "exchanged_out": ledger.exchanged[id_][1],
            }
            for id_, terms in ledger.agreements.items()
        ],
        "periods": [
            {
                "period": period,
                "closed": figures.closed,
                "due": ledger.periods.due(period),
                "debts": [{"payer": p, "payee": q, "owed": owed} for (p, q), owed in figures.debts.items()],
                "net_positions": figures.net(),
                "payments": [
                    {
                        "index": i,
                        "debtor": d,
                        "creditor": c,
                        "amount": a,
                        "settled": i in figures.settled,
                        "off_chain": figures.settled.get(i, False),
                    }
                    for i, (d, c, a) in enumerate(figures.payments)
                ],
            }
            for period, figures in sorted(ledger.periods_seen.items())
        ],
    }
