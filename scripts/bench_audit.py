"""Audit benchmark: `make bench-audit`.

Builds a chain on its own Anvil node with at least 100,000 earn and redeem events across 10,000
members (earns through `earnBatch`, redemptions signed by the members), with some points expired
and swept, then runs `loyalty audit verify` on it and writes var/bench/audit.json with the keys
events, members, events_per_s, seconds and discrepancies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from coincurve import PrivateKey
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from benchlib import send_all  # noqa: E402

from loyalty.audit.ledger import Redemption  # noqa: E402
from loyalty.audit.rpc import Rpc  # noqa: E402
from loyalty.audit.verify import consent_digest, read_params  # noqa: E402
from loyalty.chain.deploy import TokenParams, deploy_token  # noqa: E402
from loyalty.chain.devchain import free_port, start_node, stop_node  # noqa: E402

OUT = ROOT / "var" / "bench" / "audit.json"
RUN_DIR = ROOT / "var" / "bench" / "audit-run"
MEMBERS, BATCH, ROUNDS = 10_000, 500, 10  # every member earns once per round: 100,000 earns
# 500 a batch: an earn in a new epoch also files the member's previous lot (a fresh ring slot), which
# at ~30k gas a member would take 1,000 past the block gas limit.
REDEMPTIONS = 2_000
DAY = 86_400
TARGET_EVENTS_PER_S = 20_000


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def main() -> None:
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    port = free_port()
    node = start_node("anvil", port, RUN_DIR / "chain")
    try:
        url = f"http://127.0.0.1:{port}"
        figures = build_and_audit(url)
    finally:
        stop_node(node)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{'figure':<16}{'value':>14}")
    for key, value in figures.items():
        print(f"{key:<16}{value:>14,}")
    ok = figures["events_per_s"] >= TARGET_EVENTS_PER_S and figures["discrepancies"] == 0
    print(f"\nevents_per_s >= {TARGET_EVENTS_PER_S:,} and 0 discrepancies: {'yes' if ok else 'NO'}\nwrote {OUT}")
    if not ok:
        raise SystemExit("audit benchmark: target missed")


def build_and_audit(url: str) -> dict[str, Any]:
    from web3 import HTTPProvider, Web3

    w3 = Web3(HTTPProvider(url))
    admin, issuer_a, issuer_b = list(w3.eth.accounts)[:3]
    deployment, _ = deploy_token(
        w3, admin, TokenParams(epoch_length_s=DAY, validity_epochs=3), folder=RUN_DIR, record=False
    )
    token = deployment.token_address
    rpc = Rpc(url)
    role = keccak(text="ISSUER_ROLE")
    setup = []
    for issuer in (issuer_a, issuer_b):
        setup.append(
            {
                "from": admin,
                "to": token,
                "data": "0x"
                + (selector("grantRole(bytes32,address)") + abi_encode(["bytes32", "address"], [role, issuer])).hex(),
            }
        )
        setup.append(
            {
                "from": admin,
                "to": token,
                "data": "0x"
                + (
                    selector("setIssueBudget(address,uint256)") + abi_encode(["address", "uint256"], [issuer, 10**12])
                ).hex(),
            }
        )
    send_all(rpc, setup, "roles")

    keys = [PrivateKey(keccak(text=f"bench member {i}")) for i in range(MEMBERS)]
    members = [to_checksum_address(keccak(k.public_key.format(compressed=False)[1:])[-20:]) for k in keys]

    def earn_round(round_: int) -> list[dict[str, Any]]:
        txs = []
        for b in range(0, MEMBERS, BATCH):
            chunk = members[b : b + BATCH]
            amounts = [10 + (round_ + i) % 7 for i in range(len(chunk))]
            data = selector("earnBatch(address[],uint256[],uint256)") + abi_encode(
                ["address[]", "uint256[]", "uint256"], [chunk, amounts, round_ * 100 + b // BATCH + 1]
            )
            issuer = issuer_a if (b // BATCH) % 2 == 0 else issuer_b
            txs.append({"from": issuer, "to": token, "data": "0x" + data.hex(), "gas": hex(29_000_000)})
        return txs

    # Rounds over five days (epochs): by the last two, the first two days' points have expired,
    # and the last rounds' earns sweep them (`Expired`).
    for round_ in range(ROUNDS):
        send_all(rpc, earn_round(round_), f"earn round {round_ + 1}/{ROUNDS}")
        if round_ in (0, 1, 3, 7):
            rpc.call("evm_increaseTime", [DAY])
            rpc.call("evm_mine", [])

    params = read_params(rpc, token, rpc.block_number())
    deadline = int(time.time()) + 365 * DAY
    redeem_txs = []
    for i in range(REDEMPTIONS):
        member, issuer = members[i * (MEMBERS // REDEMPTIONS)], issuer_a if i % 2 else issuer_b
        redemption = Redemption(member, issuer, 25, 1 + i % 5, 1_000_000 + i, 0, "", 0)
        digest = consent_digest(params, redemption, deadline)
        signature = keys[i * (MEMBERS // REDEMPTIONS)].sign_recoverable(digest, hasher=None)
        signature = signature[:64] + bytes([signature[64] + 27])
        data = selector("redeem(address,uint256,uint256,uint256,uint256,bytes)") + abi_encode(
            ["address", "uint256", "uint256", "uint256", "uint256", "bytes"],
            [member, 25, redemption.reward_id, redemption.ref, deadline, signature],
        )
        redeem_txs.append({"from": issuer, "to": token, "data": "0x" + data.hex(), "gas": hex(200_000)})
    send_all(rpc, redeem_txs, "redemptions")

    out = RUN_DIR / "report"
    command = [sys.executable, "-m", "loyalty.cli", "audit", "verify", "--rpc", url, "--token", token,
               "--from-block", str(deployment.block_number), "--out", str(out)]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    print(done.stdout)
    if done.returncode not in (0, 1):
        raise SystemExit(f"audit verify failed:\n{done.stderr[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    events = report["figures"]["earn_events"] + report["figures"]["redeem_events"]
    return {
        "events": events,
        "members": report["figures"]["members"],
        "events_per_s": round(events / seconds, 1),
        "seconds": round(seconds, 2),
        "discrepancies": len(report["discrepancies"]),
    }


if __name__ == "__main__":
    main()
