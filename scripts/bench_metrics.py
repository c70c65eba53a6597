"""Metrics benchmark: `make bench-metrics` (SCALE=0.1 for a quick run at a tenth of the size).

Runs the service as in production (`benchlib.serving`: API, one process per core (`loyalty serve
--workers`, as `API_WORKERS` says), and worker; own Anvil node; SQLite)
on a token with daily epochs valid for 6, and builds:
- a brand whose issuer account earns 1,000,000 points events (`earnBatch`, 500 members a
  transaction, sent from its own account through Anvil's impersonation) to 100,000 members over
  12 epochs, the first ones expired by the end, and 40,000 redemptions the members sign (a
  fifth of them spend 50 points on day 4, another fifth 30 on day 10);
- the members in the database, linked to the brand (written directly: enrolling 100,000 members
  through the API is not what is measured).

Then it measures, writes the cohorts chart of the program to var/bench/metrics-cohorts.svg (the
README's picture), and writes var/bench/metrics.json with exactly these keys:
- `events`, `members`: what was built (earn and redeem events on the chain, members);
- `metrics_s`: `GET /v1/metrics` for the whole program, the median of 5 once the API has
  replayed the chain (the replay it keeps, as a running API does; the first request's time is
  printed too);
- `leaderboard_p99_ms`: `GET /v1/leaderboards/{id}/standings?limit=100&member_id=...` (top 100
  and a random member's own rank) from 8 concurrent clients;
- `webhook_deliveries_per_s`: 10,000 signed deliveries (one per member) sent by the worker's
  webhook sender to a local receiver.
Targets: metrics_s <= 30, leaderboard_p99_ms <= 50, webhook_deliveries_per_s >= 500.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from coincurve import PrivateKey
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from sqlalchemy import create_engine, func, insert, select
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from benchlib import Seeded, get_all, p99, seed, send_all, serving  # noqa: E402

from loyalty.audit.ledger import Redemption  # noqa: E402
from loyalty.audit.rpc import Rpc  # noqa: E402
from loyalty.audit.verify import consent_digest, read_params  # noqa: E402
from loyalty.chain.deploy import TokenParams  # noqa: E402
from loyalty.db.models import (  # noqa: E402
    DeliveryStatus,
    WebhookDelivery,
    WebhookEvent,
)
from loyalty.web.charts import cohorts_chart  # noqa: E402

OUT = ROOT / "var" / "bench" / "metrics.json"
RUN_DIR = ROOT / "var" / "bench" / "metrics-run"
CHART = ROOT / "var" / "bench" / "metrics-cohorts.svg"
SCALE = float(os.environ.get("SCALE", "1"))
MEMBERS = int(100_000 * SCALE)
ROUNDS = 10  # every member earns once a round: 1,000,000 earns
EPOCH_DAYS = (0, 1, 2, 3, 4, 5, 7, 8, 10, 11)  # the epoch of each round: 12 epochs, two without earns
REDEMPTIONS = int(20_000 * SCALE)  # in each of two waves
DELIVERIES = int(10_000 * SCALE)
BATCH = 500
DAY = 86_400
ADMIN_KEY = "adm_bench_metrics"
CLIENTS, LEADERBOARD_REQUESTS = 8, 2_000
FAST_IN_A_ROW = 12  # new connections answered at once in a row: every API process has warmed up
TARGETS = {"metrics_s": 30, "leaderboard_p99_ms": 50, "webhook_deliveries_per_s": 500}


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def api(stack: Any, method: str, path: str, body: Any = None, timeout: float = 600) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Idempotency-Key": os.urandom(8).hex()}
    answer = httpx.request(method, stack.api + path, json=body, headers=headers, timeout=timeout)
    if answer.status_code >= 300:
        raise SystemExit(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
    return answer.json()


def main() -> None:
    os.environ.setdefault("API_WORKERS", str(os.cpu_count() or 1))  # one API process per core, as in production
    print(f"bench-metrics: {os.environ['API_WORKERS']} API processes, {MEMBERS:,} members")
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    params = TokenParams(epoch_length_s=DAY, validity_epochs=6)
    with serving(RUN_DIR, ADMIN_KEY, params=params, recent_states=16) as stack:  # 256 copies of this state: 20 GB
        figures = run(stack)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{'figure':<28}{'value':>14}{'target':>12}")
    missed = []
    for key, value in figures.items():
        target = TARGETS.get(key)
        print(f"{key:<28}{value:>14,}{'' if target is None else target:>12}")
        if target is not None and (value < target if key.endswith("per_s") else value > target):
            missed.append(key)
    print(f"\nwrote {OUT}")
    if missed:
        raise SystemExit(f"metrics benchmark: missed {', '.join(missed)}")


def run(stack: Any) -> dict[str, Any]:
    rpc = Rpc(stack.rpc_url)
    token = stack.deployment.token_address

    def redeem(round_: int, seeded: Seeded) -> None:
        if round_ in (4, 8):  # days 4 and 10: each spends its oldest live points
            _redeem(rpc, token, seeded.brand["issuer_address"], seeded.keys, seeded.wallets, wave=round_ // 4)

    seeded = seed(stack, ADMIN_KEY, MEMBERS, EPOCH_DAYS, batch=BATCH, after_round=redeem)
    brand, ids = seeded.brand, seeded.ids
    rpc.call("evm_increaseTime", [DAY])  # to epoch 12: cohorts 0 to 6 have fully expired
    rpc.call("evm_mine", [])

    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    cold = _warm_every_process(stack, "/v1/metrics", admin, "metrics (replaying the chain)")
    times = []
    for _ in range(5):
        started = time.perf_counter()
        report = api(stack, "GET", "/v1/metrics")
        times.append(time.perf_counter() - started)
    warm = sorted(times)[len(times) // 2]
    cohorts = len(report["breakage"]["cohorts"])
    print(f"metrics: first request {cold:.1f} s, then {warm:.2f} s (median of 5); {cohorts} cohorts, "
          f"realized breakage {report['breakage']['realized_bp']} bp, liability {report['liability_points']:,}")  # fmt: skip
    CHART.write_text(cohorts_chart(report))  # the README's picture (docs/metrics-cohorts.svg)

    board = post_as(stack, brand, "/v1/leaderboards", {"name": "Top", "period": "monthly"})
    path = f"/v1/leaderboards/{board['id']}/standings?limit=100"
    _warm_every_process(
        stack, path, {"Authorization": f"Bearer {brand['api_key']}"}, "leaderboard (reading the period's logs)"
    )
    print(f"leaderboard: {get_as(stack, brand, path)['ranked']:,} members ranked")
    member_ids = list(ids.values())
    requests = [
        (f"/v1/leaderboards/{board['id']}/standings?limit=100&member_id={random.choice(member_ids)}", brand["api_key"])
        for _ in range(LEADERBOARD_REQUESTS)
    ]
    started = time.perf_counter()
    latencies = get_all(stack.api, requests, CLIENTS, "leaderboard")
    print(f"leaderboard: {len(requests) / (time.perf_counter() - started):,.0f} req/s from {CLIENTS} clients, "
          f"median {sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms, p99 {p99(latencies) * 1000:.1f} ms")  # fmt: skip

    deliveries_per_s = _webhooks(stack, create_engine(stack.database_url), brand, list(ids.values())[:DELIVERIES])
    return {
        "events": int(rpc_count(rpc, token)),
        "members": MEMBERS,
        "metrics_s": round(warm, 3),
        "leaderboard_p99_ms": round(p99(latencies) * 1000, 1),
        "webhook_deliveries_per_s": round(deliveries_per_s, 1),
    }


def _redeem(rpc: Rpc, token: str, issuer: str, keys: list[PrivateKey], wallets: Sequence[str], wave: int) -> None:
    """A wave of members' signed redemptions (the oldest live points go first): wave 1, every
    fifth member from the first, 50 points; wave 2, every fifth from the third, 30."""
    params = read_params(rpc, token, rpc.block_number())
    deadline = int(time.time()) + 365 * DAY
    points = 50 if wave == 1 else 30
    redeem_txs = []
    for i in range(REDEMPTIONS):
        who = i * (MEMBERS // REDEMPTIONS) + 2 * (wave - 1)
        redemption = Redemption(wallets[who], issuer, points, 1, wave * 1_000_000 + i, 0, "", 0)
        signature = keys[who].sign_recoverable(consent_digest(params, redemption, deadline), hasher=None)
        data = selector("redeem(address,uint256,uint256,uint256,uint256,bytes)") + abi_encode(
            ["address", "uint256", "uint256", "uint256", "uint256", "bytes"],
            [wallets[who], points, 1, redemption.ref, deadline, signature[:64] + bytes([signature[64] + 27])],
        )
        redeem_txs.append({"from": issuer, "to": token, "data": "0x" + data.hex(), "gas": hex(200_000)})
    send_all(rpc, redeem_txs, f"redemptions, wave {wave}")


def _warm_every_process(stack: Any, path: str, headers: dict[str, str], what: str) -> float:
    """`_warm` in every API process (`API_WORKERS`): requests on new connections, which any of
    them may take, until `FAST_IN_A_ROW` in a row answer at once; the first request's time."""
    first = _warm(stack, path, headers, what)
    fast = 0
    while fast < FAST_IN_A_ROW:
        started = time.perf_counter()
        httpx.get(stack.api + path, headers={**headers, "Connection": "close"}, timeout=1800)
        fast = fast + 1 if time.perf_counter() - started < max(2.0, first / 10) else 0
    return first


def _warm(stack: Any, path: str, headers: dict[str, str], what: str) -> float:
    """The first request (what the API keeps between requests is read on it); its time."""
    started = time.perf_counter()
    answer = httpx.get(stack.api + path, headers=headers, timeout=1800)
    if answer.status_code != 200:
        raise SystemExit(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    took = time.perf_counter() - started
    print(f"{what}: first request {took:.1f} s")
    return took


def post_as(stack: Any, partner: dict[str, Any], path: str, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {partner['api_key']}", "Idempotency-Key": os.urandom(8).hex()}
    return httpx.post(stack.api + path, json=body, headers=headers, timeout=600).json()


def get_as(stack: Any, partner: dict[str, Any], path: str) -> Any:
    answer = httpx.get(stack.api + path, headers={"Authorization": f"Bearer {partner['api_key']}"}, timeout=600)
    if answer.status_code != 200:
        raise SystemExit(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    return answer.json()


def rpc_count(rpc: Rpc, token: str) -> int:
    """Earn and redeem events on the chain: one per member credited, one per redemption."""
    from loyalty.audit.events import BATCH_EARNED, EARNED, REDEEMED, words

    count = 0
    for batch in rpc.logs(token, 0, rpc.block_number()):
        for raw in batch:
            kind = raw["topics"][0] if raw["topics"] else None
            count += words(raw["data"])[0] if kind == BATCH_EARNED else kind in (EARNED, REDEEMED)
    return count


class _Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as receivers behind any web server do

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def _webhooks(stack: Any, engine: Any, brand: dict[str, Any], member_ids: list[int]) -> float:
    """Seed a delivery per member to a local receiver and time the worker's sender through them."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
        endpoint = post_as(stack, brand, "/v1/webhooks", {"url": url, "event_types": ["earn.confirmed"]})
        now = datetime.now(UTC)
        with engine.begin() as db:
            db.execute(
                insert(WebhookEvent),
                [{"key": f"bench:{m}", "type": "earn.confirmed", "partner_id": brand["id"], "member_id": m,
                  "payload": json.dumps({"type": "earn.confirmed", "timestamp": now.isoformat(),
                                         "data": {"member_id": m, "amount_points": 1}}),
                  "created_at": now} for m in member_ids],
            )  # fmt: skip
            events = db.execute(select(WebhookEvent.id, WebhookEvent.member_id).where(WebhookEvent.key.like("bench:%")))
            started = time.perf_counter()
            db.execute(
                insert(WebhookDelivery),
                [{"endpoint_id": endpoint["id"], "event_id": e, "member_id": m, "status": DeliveryStatus.PENDING.value,
                  "attempts": 0, "next_attempt_at": now, "created_at": now} for e, m in events],
            )  # fmt: skip
        bar = tqdm(total=len(member_ids), desc="webhooks", unit="msg", leave=False, disable=not sys.stderr.isatty())
        while True:
            with engine.connect() as db:
                sent = db.scalar(
                    select(func.count()).where(
                        WebhookDelivery.endpoint_id == endpoint["id"],
                        WebhookDelivery.status == DeliveryStatus.DELIVERED,
                    )
                )
            bar.update(int(sent or 0) - bar.n)
            if sent == len(member_ids):
                break
            if time.perf_counter() - started > 600:
                raise SystemExit(f"webhooks: {sent} of {len(member_ids)} delivered in 10 minutes")
            time.sleep(0.2)
        bar.close()
        return len(member_ids) / (time.perf_counter() - started)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
