"""API read benchmark at scale: `make bench-api`.

Seeds one SQLite database with 100,000 members (linked to 10 partners) and 1,000,000 ledger
entries (earns and redemptions), serves the API over it (`loyalty serve --no-outbox`, its own
Anvil node for the chain reads) and measures, with concurrent clients, the p99 latency of:
- list_members: a partner's page of its members (100 rows, at a random cursor);
- find_member: a member by external id;
- history_page: a page of a member's history (50 entries; a partner's view);
- get_member: a member with its balance, read from the chain.
Writes var/bench/api.json with exactly the keys members, entries, list_members_p99_ms,
find_member_p99_ms, history_page_p99_ms, get_member_p99_ms; prints them with the targets and,
as the baseline measured in the same run, the p99 of GET /v1/rewards/{id} (the same stack:
key, session, one row by primary key) under the same load.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert
from tqdm import tqdm
from web3 import HTTPProvider, Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from benchlib import get_all, p99  # noqa: E402

from loyalty.chain.custody import Custody  # noqa: E402
from loyalty.chain.deploy import TokenParams, deploy_token  # noqa: E402
from loyalty.chain.devchain import free_port, start_node, stop_node  # noqa: E402
from loyalty.db.models import (  # noqa: E402
    Earn,
    EarnStatus,
    LinkSource,
    Member,
    MemberLink,
    Partner,
    Redemption,
    RedemptionStatus,
    Reward,
)
from loyalty.db.session import upgrade  # noqa: E402
from loyalty.domain.credentials import hash_secret  # noqa: E402
from loyalty.services.lists import encode_cursor  # noqa: E402
from loyalty.settings import DEV_OPERATOR_KEY  # noqa: E402

OUT = ROOT / "var" / "bench" / "api.json"
RUN_DIR = ROOT / "var" / "bench" / "api-run"
MEMBERS, PARTNERS, ENTRIES = 100_000, 10, 1_000_000
REQUESTS, CLIENTS = 2_000, 4  # concurrent clients; the load generator shares the 2 cores
TARGETS = {"list_members_p99_ms": 50, "find_member_p99_ms": 50, "history_page_p99_ms": 50, "get_member_p99_ms": 100}
ADMIN_KEY = "adm_bench_" + secrets.token_hex(8)
CHUNK = 20_000


def seed(database_url: str, master_key: str) -> list[str]:
    """The rows, written straight into the database; returns the partners' API keys."""
    upgrade(database_url)
    engine = create_engine(database_url)
    custody = Custody(master_key)
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    keys = [f"ptn_bench_{i}_{secrets.token_hex(8)}" for i in range(PARTNERS)]
    with (
        engine.begin() as db,
        tqdm(total=MEMBERS + ENTRIES, desc="seeding", unit="row", disable=not sys.stderr.isatty()) as bar,
    ):
        partners = []
        for i, key in enumerate(keys):
            address, sealed = custody.new_wallet()
            partners.append({
                "id": i + 1, "name": f"Partner {i}", "api_key_hash": hash_secret(key), "issuer_address": address,
                "issuer_key_sealed": sealed, "issue_budget_points": 10**12, "budget_points": 10**12, "pending_points": 0,
                "next_ref": 1, "created_at": start, "provisioned_at": start,
            })  # fmt: skip
        db.execute(insert(Partner), partners)
        db.execute(insert(Reward), [
            {"id": i + 1, "partner_id": i + 1, "name": "Mug", "description": "", "cost_points": 10, "stock": 10**9,
             "active": True, "created_at": start} for i in range(PARTNERS)
        ])  # fmt: skip
        for first in range(0, MEMBERS, CHUNK):
            ids = range(first + 1, min(MEMBERS, first + CHUNK) + 1)
            db.execute(insert(Member), [
                {"id": m, "external_id": f"member-{m}", "wallet_address": Web3.to_checksum_address(rng.randbytes(20)),
                 "custodial": False, "smart_wallet": False, "created_at": start} for m in ids
            ])  # fmt: skip
            db.execute(insert(MemberLink), [
                {"member_id": m, "partner_id": m % PARTNERS + 1, "source": LinkSource.ENROLMENT, "created_at": start} for m in ids
            ])  # fmt: skip
            bar.update(len(ids))
        redemptions = ENTRIES // 10
        for first in range(0, ENTRIES, CHUNK):
            earns, spent = [], []
            for n in range(first, min(ENTRIES, first + CHUNK)):
                member = n % MEMBERS + 1
                row = {"partner_id": member % PARTNERS + 1, "member_id": member, "amount_points": 10,
                       "created_at": start + timedelta(seconds=n)}  # fmt: skip
                if n < ENTRIES - redemptions:
                    earns.append({**row, "reason": f"order {n}", "status": EarnStatus.CONFIRMED})
                else:
                    spent.append({**row, "reward_id": member % PARTNERS + 1, "ref": n, "nonce": 0, "deadline": 0,
                                  "signature": b"", "status": RedemptionStatus.POSTED})  # fmt: skip
            if earns:
                db.execute(insert(Earn), earns)
            if spent:
                db.execute(insert(Redemption), spent)
            bar.update(len(earns) + len(spent))
    engine.dispose()
    return keys


def _get_all(api: str, requests: list[tuple[str, str]], label: str) -> list[float]:
    """GET every (path, key) with CLIENTS concurrent clients; returns the latencies in ms."""
    return [latency * 1000 for latency in get_all(api, requests, CLIENTS, label)]


def p99_ms(latencies_ms: list[float]) -> float:
    return round(p99(latencies_ms), 1)


def main() -> None:
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    chain_port, api_port = free_port(), free_port()
    node = start_node("anvil", chain_port, RUN_DIR / "chain")
    api_process = None
    try:
        rpc_url = f"http://127.0.0.1:{chain_port}"
        w3 = Web3(HTTPProvider(rpc_url))
        deployment, _ = deploy_token(w3, w3.eth.accounts[0], TokenParams(), folder=RUN_DIR, record=False)
        database_url, master_key = f"sqlite:///{RUN_DIR / 'loyalty.db'}", secrets.token_hex(32)
        started = time.perf_counter()
        keys = seed(database_url, master_key)
        print(f"seeded {MEMBERS:,} members and {ENTRIES:,} entries in {time.perf_counter() - started:.0f} s")
        env = {
            **os.environ, "DATABASE_URL": database_url, "RPC_URL": rpc_url, "TOKEN_ADDRESS": deployment.token_address,
            "LOYALTY_ADMIN_KEY": ADMIN_KEY, "LOYALTY_MASTER_KEY": master_key, "ISSUER_PRIVATE_KEY": DEV_OPERATOR_KEY,
        }  # fmt: skip
        command = [sys.executable, "-m", "loyalty.cli", "serve", "--no-outbox", "--port", str(api_port)]
        api_process = subprocess.Popen(
            command, env=env, stdout=(RUN_DIR / "api.log").open("wb"), stderr=subprocess.STDOUT
        )
        api = f"http://127.0.0.1:{api_port}"
        for _ in range(300):
            try:
                if httpx.get(api + "/v1/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"the API did not start: see {RUN_DIR / 'api.log'}")
        rng = random.Random(11)

        def member() -> tuple[int, str]:
            m = rng.randint(1, MEMBERS)
            return m, keys[m % PARTNERS]

        scenarios: dict[str, list[tuple[str, str]]] = {
            "list_members_p99_ms": [
                (
                    f"/v1/members?limit=100&cursor={encode_cursor([rng.randint(1, MEMBERS)])}",
                    keys[rng.randrange(PARTNERS)],
                )
                for _ in range(REQUESTS)
            ],
            "find_member_p99_ms": [
                (f"/v1/members?external_id=member-{m}", key) for m, key in (member() for _ in range(REQUESTS))
            ],
            "history_page_p99_ms": [
                (f"/v1/members/{m}/history?limit=50", key) for m, key in (member() for _ in range(REQUESTS))
            ],
            "get_member_p99_ms": [(f"/v1/members/{m}", key) for m, key in (member() for _ in range(REQUESTS))],
        }
        _get_all(api, scenarios["find_member_p99_ms"][:200], "warm-up")
        baseline = _get_all(api, [("/v1/rewards/1", keys[0])] * REQUESTS, "baseline")
        figures: dict[str, float] = {"members": MEMBERS, "entries": ENTRIES}
        for name, requests in scenarios.items():
            figures[name] = p99_ms(_get_all(api, requests, name.removesuffix("_p99_ms")))
    finally:
        if api_process is not None:
            api_process.terminate()
            api_process.wait(timeout=30)
        stop_node(node)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"baseline: GET /v1/rewards/1 p99 {p99_ms(baseline)} ms ({CLIENTS} clients, same run)")
    for name, target in TARGETS.items():
        verdict = "ok" if figures[name] <= target else "MISSED"
        print(
            f"{name:<22} {figures[name]:>7} ms  (target <= {target} ms, {figures[name] / p99_ms(baseline):.1f}x the baseline)  {verdict}"
        )
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
