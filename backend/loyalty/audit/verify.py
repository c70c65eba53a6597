"""`loyalty audit verify`: the program re-derived from an RPC URL and the token address alone,
and checked against the contract at the same block."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from coincurve import PublicKey
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from loyalty.audit.events import Log
from loyalty.audit.ledger import TIMED, Discrepancy, IssuerFigures, Ledger, MemberFigures, Params, Redemption
from loyalty.audit.rpc import Rpc
from loyalty.errors import ChainMismatchError, RpcError

CHECKS = {
    "balances": "every member's balance re-derived from the events equals balanceOf at the audited block",
    "total_supply": "the re-derived supply equals totalSupply at the audited block",
    "budgets": "every issuer minted within its budget, and its remaining budget equals issueBudget",
    "consents": "every redemption carries the member's EIP-712 consent, recovered from the transaction input",
    "refs_unique": "no issuer used an earn ref twice",
    "mints_by_issuers": "every mint comes from an earn by an account holding ISSUER_ROLE at that point",
    "burns_accounted": "every burn is a redemption or an expiry",
    "batch_totals": "every BatchEarned matches its mints in count and points",
    "expiries": "every Expired event burns a whole lot that had expired",
    "spends": "no redemption or transfer spends more live points than the member holds",
}
SAMPLES = 150  # points on the liability chart
REDEEM_TYPEHASH = keccak(
    text="Redeem(address member,address issuer,uint256 amount,uint256 rewardId,uint256 ref,uint256 nonce,uint256 deadline)"
)
DOMAIN_TYPEHASH = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
REDEEM_SELECTOR = keccak(text="redeem(address,uint256,uint256,uint256,uint256,bytes)")[:4]
PERMIT_SELECTOR = keccak(text="permit(address,address,uint256,uint256,uint8,bytes32,bytes32)")[:4]


def selector(signature: str) -> str:
    """A function's selector, 0x hex (calldata starts with it)."""
    return "0x" + keccak(text=signature)[:4].hex()


def _address_arg(member: str) -> str:
    return member[2:].lower().rjust(64, "0")


def _uints(rpc: Rpc, token: str, datas: list[str], block: int) -> list[int]:
    return [int.from_bytes(raw, "big") for raw in rpc.eth_calls(token, datas, block)]


def total_supply_at(rpc: Rpc, token: str, block: int) -> int:
    [supply] = _uints(rpc, token, [selector("totalSupply()")], block)
    return supply


def budgets_at(rpc: Rpc, token: str, issuers: list[str], block: int) -> dict[str, int]:
    """`issueBudget` of each issuer at `block`."""
    datas = [selector("issueBudget(address)") + _address_arg(i) for i in issuers]
    return dict(zip(issuers, _uints(rpc, token, datas, block), strict=True))


def balances_at(
    rpc: Rpc, token: str, members: list[str], block: int, tick: Callable[[int], object] | None = None
) -> dict[str, int]:
    """`balanceOf` of each member at `block`, 2,000 at a time (`tick` is told how many are done)."""
    found: dict[str, int] = {}
    for start in range(0, len(members), 2_000):
        chunk = members[start : start + 2_000]
        datas = [selector("balanceOf(address)") + _address_arg(m) for m in chunk]
        found.update(zip(chunk, _uints(rpc, token, datas, block), strict=True))
        if tick:
            tick(len(chunk))
    return found


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    checked: int
    failed: int

    @property
    def passed(self) -> bool:
        return self.failed == 0


@dataclass
class Audit:
    """What `verify` found, as of `block_number`."""

    params: Params
    block_number: int
    timestamp: int
    ledger: Ledger
    members: list[MemberFigures]
    onchain_balances: dict[str, int]
    issuers: list[IssuerFigures]
    onchain_budgets: dict[str, int]
    total_supply: int
    onchain_total_supply: int
    expired: int
    checks: list[Check]
    discrepancies: list[Discrepancy]
    timeline: list[tuple[int, int, int, int]]

    @property
    def clean(self) -> bool:
        return not self.discrepancies

    @property
    def events(self) -> int:
        """Earn and redeem events replayed (one per member credited, one per redemption)."""
        return self.ledger.earn_events + self.ledger.redeem_events


def read_params(rpc: Rpc, token: str, block: int) -> Params:
    """The token's deployed parameters, read from the contract itself; an address with no token
    there is `ChainMismatchError`."""
    token = to_checksum_address(token)
    if not str(rpc.call("eth_getCode", [token, hex(block)])).removeprefix("0x"):
        raise ChainMismatchError(f"there is no contract at {token} on chain {rpc.chain_id()} (block {block})")
    name, start, length, validity = rpc.eth_calls(
        token, [selector(s) for s in ("name()", "startTime()", "epochLength()", "validityEpochs()")], block
    )
    return Params(
        token=token,
        chain_id=rpc.chain_id(),
        name=abi_decode(["string"], name)[0],
        start_time=int.from_bytes(start, "big"),
        epoch_length=int.from_bytes(length, "big"),
        validity_epochs=int.from_bytes(validity, "big"),
    )


def sync(
    rpc: Rpc,
    ledger: Ledger,
    to_block: int,
    from_block: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Replay the token's logs from where `ledger` stopped (or `from_block`) through `to_block`."""
    start = ledger.last_block + 1 if from_block is None else from_block
    for raw in rpc.logs(ledger.params.token, start, to_block, progress=progress):
        logs = [Log.of(r) for r in raw]
        untimed = sorted(
            {log.block_number for log in logs if log.timestamp is None and log.topics and log.topics[0] in TIMED}
        )
        ledger.apply(logs, rpc.timestamps(untimed) if untimed else {})
    ledger.last_block = max(ledger.last_block, to_block)


def timeline_of(rpc: Rpc, ledger: Ledger, from_block: int, block: int) -> list[tuple[int, int, int, int]]:
    """(block, timestamp, outstanding, expired) at `SAMPLES` blocks from the first change to `block`."""
    first = min((b for b, _, _ in ledger.history), default=from_block)
    step = max(1, (block - first) // SAMPLES)
    return ledger.timeline(rpc.timestamps(sorted({*range(first, block, step), block})))


def verify(
    rpc: Rpc,
    token: str,
    from_block: int = 0,
    to_block: int | None = None,
    progress: Callable[[str, int], Any] | None = None,
) -> Audit:
    """Re-derive everything from `from_block` (the token's deployment or earlier) to `to_block`
    (default: the latest block), and check it against the contract at `to_block`.

    `progress(label, total)` may return a callable that is told how many units are done.
    """
    block = rpc.block_number() if to_block is None else to_block
    params = read_params(rpc, token, block)
    ledger = Ledger(params)
    tick = progress("logs", block - from_block + 1) if progress else None
    sync(rpc, ledger, block, from_block, tick)
    timestamp = rpc.timestamps([block])[block]
    now = params.epoch_at(timestamp)

    members = [ledger.member_figures(m, now) for m in ledger.members]
    with ThreadPoolExecutor(1) as pool:  # the node answers balance reads while consents are checked here
        tick = progress("balances", len(members)) if progress else None
        balances = pool.submit(balances_at, rpc, params.token, [m.address for m in members], block, tick)
        _check_consents(rpc, ledger, params, progress)
        onchain_balances = balances.result()
    for figures in members:
        ledger.checked["balances"] += 1
        if figures.balance != onchain_balances[figures.address]:
            ledger.flag(
                "balances",
                f"{figures.address}: derived {figures.balance}, balanceOf {onchain_balances[figures.address]}",
            )
    total_supply, expired = ledger.supply(now)
    onchain_total_supply = total_supply_at(rpc, params.token, block)
    ledger.checked["total_supply"] += 1
    if total_supply != onchain_total_supply:
        ledger.flag("total_supply", f"derived {total_supply}, totalSupply {onchain_total_supply}")

    issuers = ledger.issuer_figures(now)
    onchain_budgets = budgets_at(rpc, params.token, [i.address for i in issuers], block)
    for issuer in issuers:
        ledger.checked["budgets"] += 1
        if issuer.budget_remaining != onchain_budgets[issuer.address]:
            detail = f"{issuer.address}: derived budget {issuer.budget_remaining}, issueBudget {onchain_budgets[issuer.address]}"
            ledger.flag("budgets", detail)

    timeline = timeline_of(rpc, ledger, from_block, block)

    failures: dict[str, int] = {}
    for discrepancy in ledger.discrepancies:
        failures[discrepancy.check] = failures.get(discrepancy.check, 0) + 1
    checks = [Check(name, text, ledger.checked[name], failures.get(name, 0)) for name, text in CHECKS.items()]
    return Audit(
        params, block, timestamp, ledger, members, onchain_balances, issuers, onchain_budgets,
        total_supply, onchain_total_supply, expired, checks, ledger.discrepancies, timeline,
    )  # fmt: skip


@cache
def domain_separator(params: Params) -> bytes:
    return keccak(
        DOMAIN_TYPEHASH
        + keccak(text=params.name)
        + keccak(text="1")
        + params.chain_id.to_bytes(32, "big")
        + bytes.fromhex(params.token[2:]).rjust(32, b"\0")
    )


def consent_digest(params: Params, redemption: Redemption, deadline: int) -> bytes:
    """The EIP-712 digest of the `Redeem` consent a member signs for `redemption`."""
    struct = keccak(
        REDEEM_TYPEHASH
        + bytes.fromhex(redemption.member[2:]).rjust(32, b"\0")
        + bytes.fromhex(redemption.issuer[2:]).rjust(32, b"\0")
        + b"".join(
            n.to_bytes(32, "big")
            for n in (redemption.amount_points, redemption.reward_id, redemption.ref, redemption.nonce, deadline)
        )
    )
    return keccak(b"\x19\x01" + domain_separator(params) + struct)


def consent_signer(params: Params, redemption: Redemption, deadline: int, signature: bytes) -> str | None:
    """Who signed the EIP-712 `Redeem` consent for this redemption (None if malformed): a 65-byte
    signature, or a 64-byte EIP-2098 one (expanded as the token reads it)."""
    if len(signature) == 64:
        vs = int.from_bytes(signature[32:], "big")
        signature = signature[:32] + (vs & ((1 << 255) - 1)).to_bytes(32, "big") + bytes([27 + (vs >> 255)])
    if len(signature) != 65:
        return None
    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    try:
        public = PublicKey.from_signature_and_message(
            signature[:64] + bytes([v]), consent_digest(params, redemption, deadline), hasher=None
        )
    except Exception:
        return None
    return to_checksum_address(keccak(public.format(compressed=False)[1:])[-20:])


def _check_consents(rpc: Rpc, ledger: Ledger, params: Params, progress: Callable[[str, int], Any] | None) -> None:
    redemptions = with_permits(rpc, ledger)
    tick = progress("consents", len(redemptions)) if progress else None
    for start in range(0, len(redemptions), 2_000):
        chunk = redemptions[start : start + 2_000]
        txs = rpc.transactions(sorted({r.tx_hash for r in chunk}))
        relayed: dict[str, list[bytes]] = {}
        for redemption in chunk:
            ledger.checked["consents"] += 1
            tx = _redeem_call(rpc, params, redemption, txs[redemption.tx_hash], relayed)
            problem = _consent_problem(params, redemption, tx)
            if problem and tx is not None and problem.startswith(_NOT_THE_MEMBER):
                problem = _contract_consent_problem(rpc, params, redemption, tx, problem)
            if problem:
                ledger.discrepancies.append(
                    Discrepancy("consents", problem, redemption.tx_hash, redemption.block_number)
                )
        if tick:
            tick(len(chunk))


def _redeem_call(
    rpc: Rpc, params: Params, redemption: Redemption, tx: dict[str, Any] | None, relayed: dict[str, list[bytes]]
) -> dict[str, Any] | None:
    """The redeem call that made `redemption`, as a transaction to the token: the transaction
    itself when it calls the token, else the call a relaying contract (a PointsExchange, a
    multisig) made inside it, read from the transaction's trace (`relayed` keeps each traced
    transaction's calls). A node without traces leaves the transaction as it is: its consent
    then cannot be read."""
    if tx is None or to_checksum_address(tx.get("to") or "0x" + "0" * 40) == params.token:
        return tx
    if tx["hash"] not in relayed:
        try:
            trace = rpc.call("debug_traceTransaction", [tx["hash"], {"tracer": "callTracer"}])
        except RpcError:
            trace = None
        relayed[tx["hash"]] = list(_calls_to(trace, params.token, REDEEM_SELECTOR)) if trace else []
    calls = relayed[tx["hash"]]
    for i, data in enumerate(calls):
        member, amount, reward_id, ref = abi_decode(["address", "uint256", "uint256", "uint256"], data[4:132])
        if (to_checksum_address(member), amount, reward_id, ref) == (
            redemption.member, redemption.amount_points, redemption.reward_id, redemption.ref,
        ):  # fmt: skip
            del calls[i]  # two alike redemptions in one transaction are two calls
            return {**tx, "to": params.token, "input": "0x" + data.hex()}
    return tx


def _calls_to(frame: dict[str, Any], to: str, selector: bytes) -> Iterator[bytes]:
    """Inputs of the successful calls to `to` with `selector` anywhere in a callTracer trace
    (nothing under a frame that reverted: its calls were undone with it)."""
    if "error" in frame:
        return
    data = bytes.fromhex(str(frame.get("input", "0x"))[2:])
    if (
        frame.get("type") == "CALL"
        and to_checksum_address(frame.get("to") or "0x" + "0" * 40) == to
        and data[:4] == selector
    ):
        yield data
    for inner in frame.get("calls") or ():
        yield from _calls_to(inner, to, selector)


def with_permits(rpc: Rpc, ledger: Ledger) -> list[Redemption]:
    """The ledger's redemptions with their consent nonces counting the member's earlier permits
    (`Approval` events whose transaction calls `permit` for that owner)."""
    if not ledger.approvals:
        return ledger.redemptions
    txs = rpc.transactions(sorted({a.tx_hash for a in ledger.approvals}))
    permits: dict[str, list[tuple[int, int]]] = {}
    for approval in ledger.approvals:
        data = bytes.fromhex(str((txs.get(approval.tx_hash) or {}).get("input", "0x"))[2:])
        if data[:4] == PERMIT_SELECTOR and to_checksum_address(data[16:36]) == approval.owner:
            permits.setdefault(approval.owner, []).append((approval.block_number, approval.log_index))
    return [
        replace(r, nonce=r.nonce + bisect_left(permits[r.member], (r.block_number, r.log_index)))
        if r.member in permits
        else r
        for r in ledger.redemptions
    ]


def _consent_problem(params: Params, redemption: Redemption, tx: dict[str, Any] | None) -> str | None:
    data = bytes.fromhex(str((tx or {}).get("input", "0x"))[2:])
    if (
        tx is None
        or data[:4] != REDEEM_SELECTOR
        or to_checksum_address(tx.get("to") or "0x" + "0" * 40) != params.token
    ):
        return f"redemption by {redemption.member}: the transaction is not a direct redeem call, its consent cannot be read"
    member, amount, reward_id, ref, deadline, signature = abi_decode(
        ["address", "uint256", "uint256", "uint256", "uint256", "bytes"], data[4:]
    )
    if (to_checksum_address(member), amount, reward_id, ref) != (
        redemption.member, redemption.amount_points, redemption.reward_id, redemption.ref,
    ):  # fmt: skip
        return "the redeem call's arguments differ from its Redeemed event"
    signer = consent_signer(params, redemption, deadline, signature)
    if signer != redemption.member:
        return f"{_NOT_THE_MEMBER} {redemption.nonce} recovers to {signer}, not the member {redemption.member}"
    return None


_NOT_THE_MEMBER = "the consent of nonce"
_ERC1271_MAGIC = bytes.fromhex("1626ba7e")
_ERC1271_ACCEPTED = _ERC1271_MAGIC.ljust(32, b"\0")  # bytes32(selector), as the token compares it


def _contract_consent_problem(
    rpc: Rpc, params: Params, redemption: Redemption, tx: dict[str, Any], problem: str
) -> str | None:
    """A consent whose ECDSA signer is not the member is still the member's if the member is a
    contract wallet that accepted it (ERC-1271). The wallet's answer to the token is read from the
    redemption's own trace: an earlier transaction in the same block may have changed the wallet.
    A node without traces is asked again at the state the block started from."""
    deadline, signature = abi_decode(
        ["address", "uint256", "uint256", "uint256", "uint256", "bytes"], bytes.fromhex(str(tx["input"])[10:])
    )[4:]
    query = _ERC1271_MAGIC + abi_encode(["bytes32", "bytes"], [consent_digest(params, redemption, deadline), signature])
    try:
        trace = rpc.call("debug_traceTransaction", [redemption.tx_hash, {"tracer": "callTracer"}])
    except RpcError:
        trace = None
    if trace is not None:
        answer = _traced_answer(trace, params.token, redemption.member, query)
        if answer is not None and answer[:32] == _ERC1271_ACCEPTED:
            return None
        return f"{problem}, and the contract wallet did not accept it (ERC-1271)"
    block = redemption.block_number - 1
    if rpc.call("eth_getCode", [redemption.member, hex(block)]).removeprefix("0x"):
        try:
            [answer] = rpc.eth_calls(redemption.member, ["0x" + query.hex()], block)
        except RpcError:  # the wallet reverted: it did not accept
            answer = b""
        if answer[:32] == _ERC1271_ACCEPTED:
            return None
    return f"{problem}, and the contract wallet does not accept it (ERC-1271) as of the block before (this node offers no transaction traces)"


def _traced_answer(frame: dict[str, Any], token: str, member: str, query: bytes) -> bytes | None:
    """What `member` answered the token's `query` in a callTracer trace; None if never asked or it
    reverted."""
    if (
        frame.get("type") == "STATICCALL"
        and to_checksum_address(frame.get("from") or "0x" + "0" * 40) == token
        and to_checksum_address(frame.get("to") or "0x" + "0" * 40) == member
        and bytes.fromhex(str(frame.get("input", "0x"))[2:]) == query
    ):
        return None if "error" in frame else bytes.fromhex(str(frame.get("output") or "0x")[2:])
    for inner in frame.get("calls") or ():
        answer = _traced_answer(inner, token, member, query)
        if answer is not None:
            return answer
    return None
