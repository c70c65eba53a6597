"""Earn benchmark: `make bench-earn`.

Runs the service (`loyalty serve --no-outbox` and `loyalty worker`) against its own Anvil node and
SQLite database, and measures in the same run:
- bulk_confirmed_per_s: earns per second confirmed on-chain through POST /v1/earn/batch;
- single_req_per_s, single_accept_p99_ms: POST /v1/earn from concurrent clients;
- confirm_p99_ms: accept -> confirmed on-chain, for those single earns;
- naive_per_s: the same kind of earn sent one transaction each, waiting for each receipt;
- api_rss_mb: the API process's peak resident memory.
Writes var/bench/earn.json with exactly those keys and prints them with the targets.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from eth_account import Account
from sqlalchemy import create_engine, text
from tqdm import tqdm
from web3 import Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from benchlib import p99, post_all, serving  # noqa: E402

from loyalty.chain.artifacts import load_artifact  # noqa: E402
from loyalty.settings import DEV_OPERATOR_KEY  # noqa: E402

OUT = ROOT / "var" / "bench" / "earn.json"
RUN_DIR = ROOT / "var" / "bench" / "earn-run"
MEMBERS = 5_000
BULK_REQUESTS, BULK_ITEMS = 6, 10_000
SINGLE_REQUESTS, SINGLE_CLIENTS = 3_000, 32
NAIVE_EARNS = 200
ADMIN_KEY = "adm_bench_" + secrets.token_hex(8)


class PeakRss(threading.Thread):
    """Samples a process's resident memory every 50 ms and keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return


def wait_confirmed(engine: Any, ids: list[int], label: str) -> float:
    """Wait until every earn in `ids` is confirmed; returns the time it happened."""
    low, high, bar = min(ids), max(ids), tqdm(total=len(ids), desc=label, unit="earn", leave=False)
    query = text("SELECT status, count(*) FROM earns WHERE id BETWEEN :low AND :high GROUP BY status")
    while True:
        with engine.connect() as connection:
            counts = dict(connection.execute(query, {"low": low, "high": high}).all())
        if counts.get("failed"):
            raise RuntimeError(f"{counts['failed']} earns failed")
        bar.update(counts.get("confirmed", 0) - bar.n)
        if counts.get("confirmed", 0) == len(ids):
            bar.close()
            return time.perf_counter()
        time.sleep(0.02)


def naive_rate(w3: Web3, token_address: str, members: list[str]) -> float:
    """One `earn` transaction per earn, each awaited: what a plain web3.py integration does."""
    operator = Account.from_key(DEV_OPERATOR_KEY)
    token = w3.eth.contract(address=Web3.to_checksum_address(token_address), abi=load_artifact("LoyaltyPoints").abi)
    issuer = list(w3.eth.accounts)[5]
    for call in (token.functions.grantRole(token.functions.ISSUER_ROLE().call(), issuer),
                 token.functions.setIssueBudget(issuer, 10**12)):  # fmt: skip
        w3.eth.wait_for_transaction_receipt(call.transact({"from": operator.address}))
    start = time.perf_counter()
    for ref in tqdm(range(NAIVE_EARNS), desc="naive", unit="tx", leave=False):
        tx = token.functions.earn(members[ref % len(members)], 10, ref).transact({"from": issuer})
        w3.eth.wait_for_transaction_receipt(tx)
    return NAIVE_EARNS / (time.perf_counter() - start)


def main() -> None:
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    with serving(RUN_DIR, ADMIN_KEY) as stack:
        api, w3, deployment, database_url = stack.api, stack.w3, stack.deployment, stack.database_url
        rss = PeakRss(stack.api_pid)
        rss.start()
        engine = create_engine(database_url)

        [(_, partner)] = post_all(
            api, ADMIN_KEY, "/v1/partners", [{"name": "Bench", "issue_budget_points": 10**15}], 1, "partner"
        )
        key = partner["api_key"]
        addresses = [Account.create().address for _ in range(MEMBERS)]
        bodies = [{"external_id": f"m{i}", "wallet_address": a} for i, a in enumerate(addresses)]
        members = [body["id"] for _, body in post_all(api, key, "/v1/members", bodies, 16, "members")]

        naive_per_s = naive_rate(w3, deployment.token_address, addresses)

        batches = [{"items": [{"member_id": members[(b * BULK_ITEMS + i) % MEMBERS], "amount_points": 5}
                              for i in range(BULK_ITEMS)]} for b in range(BULK_REQUESTS)]  # fmt: skip
        start = time.perf_counter()
        accepted = post_all(api, key, "/v1/earn/batch", batches, 2, "bulk accept")
        ids = [earn_id for _, body in accepted for earn_id in body["ids"]]
        bulk_confirmed_per_s = len(ids) / (wait_confirmed(engine, ids, "bulk confirm") - start)

        singles = [{"member_id": members[i % MEMBERS], "amount_points": 3} for i in range(SINGLE_REQUESTS)]
        start = time.perf_counter()
        results = post_all(api, key, "/v1/earn", singles, SINGLE_CLIENTS, "single")
        single_req_per_s = len(results) / (time.perf_counter() - start)
        single_ids = [body["id"] for _, body in results]
        wait_confirmed(engine, single_ids, "single confirm")
        with engine.connect() as connection:
            delays = connection.execute(
                text("SELECT (julianday(confirmed_at) - julianday(created_at)) * 86400000.0 FROM earns "
                     "WHERE id BETWEEN :low AND :high"), {"low": min(single_ids), "high": max(single_ids)},
            ).scalars().all()  # fmt: skip
        rss.done.set()
        figures = {
            "bulk_confirmed_per_s": round(bulk_confirmed_per_s, 1),
            "single_req_per_s": round(single_req_per_s, 1),
            "single_accept_p99_ms": round(p99([latency for latency, _ in results]) * 1000, 1),
            "confirm_p99_ms": round(p99([float(d) for d in delays]), 1),
            "naive_per_s": round(naive_per_s, 1),
            "api_rss_mb": round(rss.peak / 2**20, 1),
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    report(figures)


def report(f: dict[str, float]) -> None:
    targets = [
        ("bulk_confirmed_per_s >= 5000", f["bulk_confirmed_per_s"] >= 5_000),
        ("bulk / naive >= 30", f["bulk_confirmed_per_s"] / f["naive_per_s"] >= 30),
        ("single_req_per_s >= 500", f["single_req_per_s"] >= 500),
        ("single_accept_p99_ms <= 100", f["single_accept_p99_ms"] <= 100),
        ("confirm_p99_ms <= 2000", f["confirm_p99_ms"] <= 2_000),
        ("api_rss_mb <= 300", f["api_rss_mb"] <= 300),
    ]
    print(f"\n{'figure':<24}{'value':>12}")
    for key, value in f.items():
        print(f"{key:<24}{value:>12,.1f}")
    print(f"{'bulk / naive':<24}{f['bulk_confirmed_per_s'] / f['naive_per_s']:>12,.1f}")
    print()
    for what, ok in targets:
        print(f"{what:<32} {'yes' if ok else 'NO'}")
    print(f"\nwrote {OUT}")
    if not all(ok for _, ok in targets):
        raise SystemExit("earn benchmark: target(s) missed")


if __name__ == "__main__":
    main()
