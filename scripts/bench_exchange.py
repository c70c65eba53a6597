"""Exchange benchmark: `make bench-exchange`.

Runs the service (`loyalty serve --no-outbox` and `loyalty worker`) against its own Anvil node,
exchange and SQLite database, with two brands' programs and a registered agreement between them
(hotel points for air miles, 3 : 1), and measures in the same run:
- confirmed_per_s: custodial members' exchanges per second, from the first POST
  /v1/exchanges/batch (the hotel asks; each member's one-time code is its consent) to the last
  confirmed on-chain, relayed by the outbox in `exchangeBatch` transactions;
- naive_per_s: the same kind of exchange sent one `exchange` transaction each, waiting for each
  receipt (consents signed beforehand, no backend);
- audit_discrepancies: what `loyalty audit verify --exchange` finds afterwards (both tokens and
  the exchange; 0 expected);
- exchanges: how many went through the API.
Writes var/bench/exchange.json with exactly those keys and prints them with the targets.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from eth_account import Account
from sqlalchemy import create_engine, text
from tqdm import tqdm
from web3 import Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from benchlib import post_all, serving  # noqa: E402

from loyalty.chain.artifacts import load_artifact  # noqa: E402
from loyalty.chain.deploy import TokenParams, deploy_token  # noqa: E402
from loyalty.domain.consent import RedeemConsent, redeem_typed_data, sign_typed_data  # noqa: E402
from loyalty.settings import DEV_OPERATOR_KEY  # noqa: E402

OUT = ROOT / "var" / "bench" / "exchange.json"
RUN_DIR = ROOT / "var" / "bench" / "exchange-run"
MEMBERS = 2_000  # each signs in once (argon2: the setup's slowest part)
BATCH = 250  # exchanges per POST /v1/exchanges/batch
NAIVE = 100
AMOUNT_IN = 300
ADMIN_KEY = "adm_bench_" + secrets.token_hex(8)
PASSPHRASE = "a bench passphrase"


async def _post_each(api: str, calls: Sequence[tuple[str, Any, str | None]], clients: int, label: str) -> list[Any]:
    """POST each (path, body, bearer) with `clients` concurrent clients; the answers in order. A
    `503 busy` (the API hashes a few passphrases at a time) is sent again."""
    answers: list[Any] = [None] * len(calls)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(calls)):
        queue.put_nowait(i)
    bar = tqdm(total=len(calls), desc=label, leave=False, disable=not sys.stderr.isatty())
    async with aiohttp.ClientSession(
        base_url=api, connector=aiohttp.TCPConnector(limit=clients), timeout=aiohttp.ClientTimeout(total=600)
    ) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                path, body, key = calls[i]
                headers = {"Idempotency-Key": uuid.uuid4().hex, **({"Authorization": f"Bearer {key}"} if key else {})}
                while True:
                    async with client.post(path, json=body, headers=headers) as response:
                        answer = await response.json(content_type=None)
                    if response.status != 503:
                        break
                    await asyncio.sleep(0.05)
                if response.status >= 300:
                    raise RuntimeError(f"{path} -> {response.status}: {str(answer)[:300]}")
                answers[i] = answer
                bar.update()

        await asyncio.gather(*(worker() for _ in range(clients)))
    bar.close()
    return answers


def post_each(api: str, calls: Sequence[tuple[str, Any, str | None]], clients: int, label: str) -> list[Any]:
    return asyncio.run(_post_each(api, calls, clients, label))


def wait_for(engine: Any, query: str, done: Any, label: str, total: int, timeout_s: float = 600) -> float:
    """Poll `query` (a count) until `done(count)`; returns when it happened."""
    bar, deadline = (
        tqdm(total=total, desc=label, leave=False, disable=not sys.stderr.isatty()),
        time.monotonic() + timeout_s,
    )
    while True:
        with engine.connect() as connection:
            count = int(connection.execute(text(query)).scalar() or 0)
        bar.update(count - bar.n)
        if done(count):
            bar.close()
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise SystemExit(f"{label}: timed out at {count} of {total}")
        time.sleep(0.05)


def naive_rate(
    w3: Web3, source: str, exchange_address: str, terms: tuple[Any, ...], agreement_id: str, first_ref: int
) -> float:
    """One `exchange` per member, each awaited: what a plain web3.py integration does (the
    relayer is the operator, the consents are signed beforehand)."""
    operator = Account.from_key(DEV_OPERATOR_KEY)
    token = w3.eth.contract(address=Web3.to_checksum_address(source), abi=load_artifact("LoyaltyPoints").abi)
    exchange = w3.eth.contract(
        address=Web3.to_checksum_address(exchange_address), abi=load_artifact("PointsExchange").abi
    )
    issuer = list(w3.eth.accounts)[5]
    for call in (token.functions.grantRole(token.functions.ISSUER_ROLE().call(), issuer),
                 token.functions.setIssueBudget(issuer, 10**12)):  # fmt: skip
        w3.eth.wait_for_transaction_receipt(call.transact({"from": operator.address}))
    keys = [Account.create() for _ in range(NAIVE)]
    members = [k.address for k in keys]
    w3.eth.wait_for_transaction_receipt(
        token.functions.earnBatch(members, [AMOUNT_IN] * NAIVE, 10**9).transact({"from": issuer})
    )
    name, deadline = token.functions.name().call(), int(time.time()) + 3_600
    orders = []
    for i, key in enumerate(keys):
        ref = first_ref + i
        consent = RedeemConsent(key.address, exchange_address, AMOUNT_IN, int(agreement_id, 16), ref, 0, deadline)
        typed = redeem_typed_data(consent, chain_id=w3.eth.chain_id, token_address=token.address, token_name=name)
        orders.append((key.address, ref, sign_typed_data(typed, key.key)))
    start = time.perf_counter()
    for member, ref, signature in tqdm(orders, desc="naive", unit="tx", leave=False, disable=not sys.stderr.isatty()):
        tx = exchange.functions.exchange(terms, member, AMOUNT_IN, ref, deadline, signature).transact(
            {"from": operator.address}
        )
        if w3.eth.wait_for_transaction_receipt(tx)["status"] != 1:
            raise SystemExit("a naive exchange reverted")
    return NAIVE / (time.perf_counter() - start)


def main() -> None:
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    with serving(RUN_DIR, ADMIN_KEY, exchange=True) as stack:
        api, w3, database_url = stack.api, stack.w3, stack.database_url
        assert stack.exchange is not None
        engine = create_engine(database_url)
        (_, hotel), (_, airline) = post_all(
            api, ADMIN_KEY, "/v1/partners",
            [{"name": "Hotel", "issue_budget_points": 10**12}, {"name": "Airline", "issue_budget_points": 10**12}],
            1, "partners",
        )  # fmt: skip
        operator = Account.from_key(DEV_OPERATOR_KEY).address
        params = TokenParams(name="Air Miles", symbol="MILES")
        miles, _ = deploy_token(w3, list(w3.eth.accounts)[1], params, admin=operator, folder=RUN_DIR, record=False)
        [(_, program)] = post_all(
            api, ADMIN_KEY, "/v1/programs", [{"token_address": miles.token_address}], 1, "program"
        )
        terms = {"source_program_id": 1, "target_program_id": program["id"], "payer_id": hotel["id"],
                 "payee_id": airline["id"], "rate_numerator": 1, "rate_denominator": 3, "minimum_in": 300, "step_in": 3,
                 "price_per_point": 20_000, "valid_until": (datetime.now(UTC) + timedelta(days=30)).isoformat()}  # fmt: skip
        [(_, agreement)] = post_all(api, hotel["api_key"], "/v1/agreements", [terms], 1, "agreement")
        post_all(api, airline["api_key"], f"/v1/agreements/{agreement['id']}/sign", [None], 1, "sign")
        post_all(api, ADMIN_KEY, f"/v1/programs/{program['id']}/incoming-budget", [{"points": 10**9}], 1, "budget")

        enrolled = post_all(
            api,
            hotel["api_key"],
            "/v1/members",
            [{"external_id": f"m{i}"} for i in range(MEMBERS)],
            16,
            "members",
        )
        members = [body for _, body in enrolled]
        earns = [{"items": [{"member_id": m["id"], "amount_points": AMOUNT_IN} for m in members[i : i + 1_000]]}
                 for i in range(0, MEMBERS, 1_000)]  # fmt: skip
        post_all(api, hotel["api_key"], "/v1/earn/batch", earns, 2, "earn")
        # Each custodial member signs in once (a reset token from the operator, then its passphrase)
        # and gives the hotel a one-time code: its consent to the exchange the hotel asks for.
        resets = post_each(
            api, [(f"/v1/members/{m['id']}/passphrase-resets", None, ADMIN_KEY) for m in members], 8, "resets"
        )
        choose = [("/v1/auth/passphrase", {"token": r["token"], "passphrase": PASSPHRASE}, None) for r in resets]
        sessions = post_each(api, choose, 2, "sign-ins")
        code = {"partner_id": hotel["id"], "max_points": AMOUNT_IN}
        codes = post_each(api, [("/v1/me/redemption-codes", code, s["token"]) for s in sessions], 8, "codes")
        wait_for(
            engine, "SELECT count(*) FROM earns WHERE status = 'confirmed'", lambda n: n == MEMBERS, "earned", MEMBERS
        )
        wait_for(
            engine, "SELECT count(*) FROM agreements WHERE status = 'registered'", lambda n: n == 1, "registered", 1
        )
        wait_for(engine, "SELECT count(*) FROM programs WHERE incoming_to_grant_points = 0 AND incoming_budget_points > 0",
                 lambda n: n == 1, "incoming budget", 1)  # fmt: skip

        items = [
            {
                "agreement_id": agreement["id"],
                "member_id": m["id"],
                "amount_in": AMOUNT_IN,
                "redemption_code": c["code"],
            }
            for m, c in zip(members, codes, strict=True)
        ]
        batches = [
            ("/v1/exchanges/batch", {"exchanges": items[i : i + BATCH]}, hotel["api_key"])
            for i in range(0, len(items), BATCH)
        ]
        start = time.perf_counter()
        answers = post_each(api, batches, 2, "exchange")
        accepted = time.perf_counter()
        results = [r for answer in answers for r in answer["results"]]
        refused = [r["problem"] for r in results if r["problem"]]
        if refused:
            raise SystemExit(f"{len(refused)} exchanges refused: {refused[0]}")
        ids = [r["exchange"]["id"] for r in results]
        confirmed = wait_for(
            engine, "SELECT count(*) FROM exchanges WHERE status IN ('confirmed', 'voided')",
            lambda n: n == len(ids), "confirm", len(ids),
        )  # fmt: skip
        with engine.connect() as connection:
            voided = connection.execute(
                text("SELECT count(*), max(error) FROM exchanges WHERE status = 'voided'")
            ).one()
        if voided[0]:
            raise SystemExit(f"{voided[0]} exchanges voided: {voided[1]}")
        confirmed_per_s = len(ids) / (confirmed - start)
        print(f"accepted {len(ids):,} in {accepted - start:.1f} s ({len(ids) / (accepted - start):,.0f}/s)")

        # After the service's exchanges: the naive ones take refs above all of the service's.
        agreement = httpx.get(
            f"{api}/v1/agreements/{agreement['id']}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ).json()
        with engine.connect() as connection:
            first_ref = int(connection.execute(text("SELECT max(exchange_next_ref) FROM programs")).scalar() or 1)
        naive_per_s = naive_rate(w3, stack.deployment.token_address, stack.exchange, tuple(agreement["terms"].values()),
                                 agreement["agreement_id"], first_ref)  # fmt: skip

        discrepancies = 0
        for token in (stack.deployment.token_address, miles.token_address):
            out = RUN_DIR / f"audit-{token}"
            command = [sys.executable, "-m", "loyalty.cli", "audit", "verify", "--rpc", stack.rpc_url, "--token", token,
                       "--exchange", stack.exchange, "--out", str(out)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode not in (0, 1):
                raise SystemExit(f"audit verify failed:\n{done.stderr[-2000:]}")
            discrepancies += len(json.loads((out / "report.json").read_text())["discrepancies"])
        discrepancies += len(json.loads((out / "exchange.json").read_text())["discrepancies"])  # (once: one exchange)
        figures = {
            "exchanges": len(ids),
            "confirmed_per_s": round(confirmed_per_s, 1),
            "naive_per_s": round(naive_per_s, 1),
            "audit_discrepancies": discrepancies,
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    report(figures)


def report(f: dict[str, float]) -> None:
    ratio = f["confirmed_per_s"] / f["naive_per_s"]
    targets = [
        ("confirmed_per_s >= 500", f["confirmed_per_s"] >= 500),
        ("confirmed / naive >= 10", ratio >= 10),
        ("audit_discrepancies == 0", f["audit_discrepancies"] == 0),
    ]
    print(f"\n{'figure':<24}{'value':>12}")
    for key, value in f.items():
        print(f"{key:<24}{value:>12,.1f}")
    print(f"{'confirmed / naive':<24}{ratio:>12,.1f}\n")
    for what, ok in targets:
        print(f"{what:<32} {'yes' if ok else 'NO'}")
    print(f"\nwrote {OUT}")
    if not all(ok for _, ok in targets):
        raise SystemExit("exchange benchmark: target(s) missed")


if __name__ == "__main__":
    main()
