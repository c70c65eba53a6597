"""The outbox chaos test: `make chaos` (a script, not a timed test).

A careful client (the same Idempotency-Key until it gets a 2xx or 4xx answer) sends earns to
many members while the API (`loyalty serve --no-outbox`) and the worker (`loyalty worker`) are
killed with SIGKILL at random and restarted, and a second writer is started and stopped beside
them. Then everything drains, and the accepted answers are held against the chain: `totalSupply`
and every member's `balanceOf`.

Writes var/bench/chaos.json (`earns`, `kills`, `accepted_points`, `chain_minted_points`,
`lost_points`, `duplicated_points`, `stuck_earns`); targets: lost, duplicated and stuck all 0.
`--earns 300 --members 60 --kills 4` is the small version `make test` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm
from web3 import HTTPProvider, Web3

from loyalty.chain.artifacts import load_artifact
from loyalty.chain.deploy import TokenParams, deploy_token
from loyalty.chain.devchain import free_port, start_node, stop_node, stop_process
from loyalty.paths import VAR
from loyalty.settings import DEV_OPERATOR_KEY

ADMIN_KEY = "adm_chaos_" + secrets.token_hex(8)
ITEMS_PER_REQUEST = 10  # earns per POST /v1/earn/batch (every fifth request is a single POST /v1/earn)
CLIENTS = 8


@dataclass
class Service:
    """One `loyalty` process that the chaos kills and starts again."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout_s=30)


@dataclass
class Chaos:
    """Kills the API or the worker at random and restarts it, waiting until it serves again
    before the next kill; once starts a second writer beside them, and later stops it."""

    api: str
    services: list[Service]
    spare: Service
    target: int
    kills: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = random.Random(7)
        spare_at, spare_until = self.target // 3, 2 * self.target // 3
        while self.kills < self.target and not self.stop.wait(rng.uniform(0.5, 2.0)):
            victim = rng.choice(self.services)
            victim.kill()
            self.kills += 1
            time.sleep(rng.uniform(0.0, 0.3))
            victim.start()
            if self.kills == spare_at:
                self.spare.start()  # a second writer: it must stand by, not write too
            elif self.kills == spare_until:
                self.spare.stop()
            wait_for(self.serving, 60, f"{victim.name} restarting")

    def serving(self) -> bool:
        """The API answers and a live worker holds the writer lease and works."""
        writer = httpx.get(self.api + "/v1/health", timeout=5).json()["writer"]
        live = {s.process.pid for s in (*self.services, self.spare) if s.process and s.process.poll() is None}
        holder = str(writer.get("holder") or "")
        return any(f" pid {pid} " in holder for pid in live) and float(writer["last_seen_s"]) < 2


_client = threading.local()


def careful_post(api: str, path: str, body: Any, key: str) -> tuple[int, Any]:
    """POST with one Idempotency-Key until a 2xx or 4xx answer (through crashes and restarts)."""
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex}
    if not hasattr(_client, "http"):
        _client.http = httpx.Client(base_url=api, timeout=30)
    while True:
        try:
            response = _client.http.post(path, json=body, headers=headers)
        except httpx.HTTPError:
            time.sleep(0.1)
            continue
        if response.status_code < 500:
            return response.status_code, response.json()
        time.sleep(0.1)


def wait_for(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"chaos: {what} did not happen within {timeout_s:.0f} s")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description="The outbox chaos test.")
    parser.add_argument("--earns", type=int, default=20_000)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--database-url", help="default: SQLite in the run's folder")
    parser.add_argument("--out", type=Path, default=VAR / "bench" / "chaos.json")
    options = parser.parse_args()

    run_dir = Path(tempfile.mkdtemp(prefix="loyalty-chaos-"))
    chain_port, api_port = free_port(), free_port()
    node = start_node("anvil", chain_port, run_dir / "chain")
    services: list[Service] = []
    try:
        rpc_url, api = f"http://127.0.0.1:{chain_port}", f"http://127.0.0.1:{api_port}"
        w3 = Web3(HTTPProvider(rpc_url))
        deployment, _ = deploy_token(w3, w3.eth.accounts[0], TokenParams(), folder=run_dir, record=False)
        env = {
            **os.environ,
            "DATABASE_URL": options.database_url or f"sqlite:///{run_dir / 'loyalty.db'}",
            "RPC_URL": rpc_url,
            "TOKEN_ADDRESS": deployment.token_address,
            "LOYALTY_ADMIN_KEY": ADMIN_KEY,
            "LOYALTY_MASTER_KEY": secrets.token_hex(32),
            "ISSUER_PRIVATE_KEY": DEV_OPERATOR_KEY,
        }
        cli = [sys.executable, "-m", "loyalty.cli"]
        api_service = Service("api", [*cli, "serve", "--no-outbox", "--port", str(api_port)], env, run_dir / "api.log")
        worker = Service("worker", [*cli, "worker"], env, run_dir / "worker.log")
        spare = Service("second writer", [*cli, "worker"], env, run_dir / "spare.log")
        services = [api_service, worker, spare]
        for service in (api_service, worker):
            service.start()
        wait_for(lambda: httpx.get(api + "/v1/health").status_code == 200, 60, "the API starting")

        _, partner = careful_post(api, "/v1/partners", {"name": "Chaos", "issue_budget_points": 10**15}, ADMIN_KEY)
        key = partner["api_key"]
        with ThreadPoolExecutor(CLIENTS) as pool:
            created = list(
                tqdm(
                    pool.map(lambda i: careful_post(api, "/v1/members", {"external_id": f"m{i}"}, key), range(options.members)),
                    total=options.members, desc="members", unit="member", leave=False, disable=not sys.stderr.isatty(),
                )
            )  # fmt: skip
        members = [body for _, body in created]

        rng = random.Random(11)
        plan = [(members[rng.randrange(len(members))], rng.randint(1, 100)) for _ in range(options.earns)]
        requests: list[list[tuple[dict[str, Any], int]]] = []
        start = 0
        while start < len(plan):  # every fifth request a single earn, the rest batches
            size = 1 if len(requests) % 5 == 0 else ITEMS_PER_REQUEST
            requests.append(plan[start : start + size])
            start += size
        chaos = Chaos(api, [api_service, worker], spare, options.kills)
        killer = threading.Thread(target=chaos.run, daemon=True)
        killer.start()

        def send(i: int) -> tuple[int, list[tuple[dict[str, Any], int]], Any]:
            items = requests[i]
            if len(items) == 1 and i % 5 == 0:
                body, path = {"member_id": items[0][0]["id"], "amount_points": items[0][1]}, "/v1/earn"
            else:
                body = {"items": [{"member_id": m["id"], "amount_points": a} for m, a in items]}
                path = "/v1/earn/batch"
            status, answer = careful_post(api, path, body, key)
            return status, items, answer

        accepted: Counter[str] = Counter()
        earns = 0
        with ThreadPoolExecutor(CLIENTS) as pool:
            bar = tqdm(total=len(requests), desc="earns", unit="req", leave=False, disable=not sys.stderr.isatty())
            for status, items, answer in pool.map(send, range(len(requests))):
                bar.update()
                earns += len(items)
                if status == 202:
                    for member, amount in items:
                        accepted[member["wallet_address"]] += amount
                else:
                    print(f"refused ({status}): {answer}")
            bar.close()
        while chaos.kills < options.kills:  # the rest of the kills while the outbox drains
            time.sleep(0.2)
        chaos.stop.set()
        killer.join()
        spare.stop()
        for service in (api_service, worker):
            if service.process is None or service.process.poll() is not None:
                service.start()
        wait_for(lambda: httpx.get(api + "/v1/health").status_code == 200, 60, "the API starting")

        def pending() -> int:
            health = httpx.get(api + "/v1/health", timeout=30).json()
            return int(health["outbox"]["pending_earns"])

        try:
            wait_for(lambda: pending() == 0, 300, "the outbox draining")
        except SystemExit as exc:
            print(exc)
        token = w3.eth.contract(
            address=Web3.to_checksum_address(deployment.token_address), abi=load_artifact("LoyaltyPoints").abi
        )
        balances = {
            wallet: int(token.functions.balanceOf(wallet).call()) for wallet in {m["wallet_address"] for m in members}
        }
        figures = {
            "earns": earns,
            "kills": chaos.kills,
            "accepted_points": sum(accepted.values()),
            "chain_minted_points": int(token.functions.totalSupply().call()),
            "lost_points": sum(max(0, accepted[w] - b) for w, b in balances.items()),
            "duplicated_points": sum(max(0, b - accepted[w]) for w, b in balances.items()),
            "stuck_earns": pending(),
        }
    finally:
        for service in services:
            service.stop()
        stop_node(node)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(figures, indent=2) + "\n")
    for name, value in figures.items():
        print(f"{name:<22}{value:>12,}")
    ok = figures["lost_points"] == figures["duplicated_points"] == figures["stuck_earns"] == 0
    ok = ok and figures["chain_minted_points"] == figures["accepted_points"]
    print(f"\nlost, duplicated and stuck all 0: {'yes' if ok else 'NO'} (logs in {run_dir}); wrote {options.out}")
    if not ok:
        raise SystemExit("chaos: target missed")
    shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
