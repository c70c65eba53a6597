"""What the API benchmarks share: the service run as in production (`loyalty serve
--no-outbox` and `loyalty worker`, own Anvil node and SQLite database), a load generator of
concurrent clients, and percentiles."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from coincurve import PrivateKey
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy import create_engine, insert, select
from tqdm import tqdm
from web3 import HTTPProvider, Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from loyalty.audit.rpc import Rpc  # noqa: E402
from loyalty.chain.deploy import Deployment, TokenParams, deploy_exchange, deploy_token  # noqa: E402
from loyalty.chain.devchain import RECENT_STATES, free_port, start_node, stop_node  # noqa: E402
from loyalty.db.models import Member, MemberLink  # noqa: E402
from loyalty.settings import DEV_OPERATOR_KEY  # noqa: E402


def send_all(rpc: Any, txs: list[dict[str, Any]], label: str) -> list[str]:
    """Send unlocked-account transactions in JSON-RPC batches, mine them, and check every receipt.

    Automine is off while sending: the node takes a batch's calls in parallel, so they arrive out
    of nonce order; blocks are mined here until the pool is empty."""
    senders = sorted({tx["from"] for tx in txs})
    counts = rpc.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
    nonces = {sender: int(count, 16) for sender, count in zip(senders, counts, strict=True)}
    for tx in txs:
        tx.setdefault("gas", hex(300_000))  # no estimates: they would run against the state before this batch
        tx["nonce"] = hex(nonces[tx["from"]])
        nonces[tx["from"]] += 1
    rpc.call("evm_setAutomine", [False])
    hashes: list[str] = []
    bar = tqdm(total=len(txs), desc=label, unit="tx", leave=False)
    chunk: list[dict[str, Any]] = []
    for i, tx in enumerate(txs):  # batches of 100, or of 1 MB of calldata (the node refuses large bodies)
        chunk.append(tx)
        if len(chunk) == 100 or sum(len(t.get("data", "")) for t in chunk) > 2**20 or i == len(txs) - 1:
            hashes += rpc.batch([("eth_sendTransaction", [t]) for t in chunk])
            chunk = []
    while int(rpc.call("txpool_status", [])["pending"], 16):
        rpc.call("evm_mine", [])
        bar.update(len(txs) - int(rpc.call("txpool_status", [])["pending"], 16) - bar.n)
    bar.close()
    rpc.call("evm_setAutomine", [True])
    statuses = [r["status"] if r else None for r in rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])]
    failed = [h for h, status in zip(hashes, statuses, strict=True) if status != "0x1"]
    if failed:
        raise SystemExit(f"{label}: {len(failed)} transactions failed, first {failed[0]}")
    return hashes


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def p99(values: list[float]) -> float:
    return percentile(values, 0.99)


@dataclass
class Stack:
    api: str
    w3: Web3
    deployment: Deployment
    database_url: str
    api_pid: int
    rpc_url: str = ""
    exchange: str | None = None  # the PointsExchange, when asked for


@contextmanager
def serving(
    run_dir: Path,
    admin_key: str,
    *,
    exchange: bool = False,
    params: TokenParams | None = None,
    recent_states: int = RECENT_STATES,
) -> Iterator[Stack]:
    """The service on its own chain and database in `run_dir`; the API and the outbox writer in
    two processes, so neither waits for the other's share of the interpreter lock. With
    `exchange`, a PointsExchange (settling in a TestDollar) relayed by the operator too;
    `params`: the token's (default: `TokenParams()`); `recent_states`: the node's
    (`devchain.node_command`)."""
    chain_port, api_port = free_port(), free_port()
    node = start_node("anvil", chain_port, run_dir / "chain", recent_states=recent_states)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        rpc_url = f"http://127.0.0.1:{chain_port}"
        w3 = Web3(HTTPProvider(rpc_url))
        deployment, _ = deploy_token(w3, w3.eth.accounts[0], params or TokenParams(), folder=run_dir, record=False)
        database_url = f"sqlite:///{run_dir / 'loyalty.db'}"
        exchange_address = None
        if exchange:
            operator = w3.eth.accounts[0]  # DEV_OPERATOR_KEY's account
            found, _ = deploy_exchange(w3, operator, relayer=operator, folder=run_dir)
            exchange_address = found.exchange_address
        env = {
            **os.environ, "DATABASE_URL": database_url, "RPC_URL": rpc_url, "TOKEN_ADDRESS": deployment.token_address,
            "LOYALTY_ADMIN_KEY": admin_key, "LOYALTY_MASTER_KEY": secrets.token_hex(32), "ISSUER_PRIVATE_KEY": DEV_OPERATOR_KEY,
        }  # fmt: skip
        if exchange_address is not None:
            env["EXCHANGE_ADDRESS"] = exchange_address
        for name, command in (
            ("api", ["serve", "--no-outbox", "--port", str(api_port)]),
            ("worker", ["worker"]),
        ):
            log = (run_dir / f"{name}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "loyalty.cli", *command], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        api = f"http://127.0.0.1:{api_port}"
        for _ in range(300):
            try:
                if httpx.get(api + "/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"the API did not start: see {run_dir / 'api.log'}")
        yield Stack(api, w3, deployment, database_url, processes[0].pid, rpc_url, exchange_address)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        stop_node(node)


async def _post_all(
    api: str, key: str, path: str, bodies: list[Any], clients: int, label: str
) -> list[tuple[float, Any]]:
    """POST every body with `clients` concurrent clients; returns (latency_s, json) in order.

    aiohttp rather than httpx: on two cores the load generator competes with the server for CPU,
    and aiohttp's client costs less per request.
    """
    results: list[tuple[float, Any]] = [(0.0, None)] * len(bodies)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(bodies)):
        queue.put_nowait(i)
    bar = tqdm(total=len(bodies), desc=label, unit="req", leave=False, disable=not sys.stderr.isatty())
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(
        base_url=api, connector=connector, timeout=aiohttp.ClientTimeout(total=300)
    ) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex}
                start = time.perf_counter()
                async with client.post(path, json=bodies[i], headers=headers) as response:
                    body = await response.json(content_type=None)
                    if response.status >= 300:
                        raise RuntimeError(f"{path} -> {response.status}: {str(body)[:300]}")
                results[i] = (time.perf_counter() - start, body)
                bar.update()

        await asyncio.gather(*(worker() for _ in range(clients)))
    bar.close()
    return results


Get = tuple[str, str] | tuple[str, str, str]  # (path, bearer key) or (path, secret, the cookie that holds it)


async def _get_all(api: str, requests: Sequence[Get], clients: int, label: str) -> list[float]:
    """GET every (path, key) with `clients` concurrent clients; returns the latencies in seconds.
    A third item names a cookie to send the secret in (the web UI's pages) instead of a key."""
    latencies: list[float] = []
    queue: asyncio.Queue[Get] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    bar = tqdm(total=len(requests), desc=label, unit="req", leave=False, disable=not sys.stderr.isatty())
    async with aiohttp.ClientSession(base_url=api, connector=aiohttp.TCPConnector(limit=clients)) as client:

        async def worker() -> None:
            while not queue.empty():
                path, key, *cookie = queue.get_nowait()
                headers = {"Cookie": f"{cookie[0]}={key}"} if cookie else {"Authorization": f"Bearer {key}"}
                started = time.perf_counter()
                async with client.get(path, headers=headers, allow_redirects=False) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{path} -> {response.status}: {body[:300]!r}")
                latencies.append(time.perf_counter() - started)
                bar.update()

        await asyncio.gather(*(worker() for _ in range(clients)))
    bar.close()
    return latencies


def get_all(api: str, requests: Sequence[Get], clients: int, label: str) -> list[float]:
    return asyncio.run(_get_all(api, requests, clients, label))


def post_all(api: str, key: str, path: str, bodies: list[Any], clients: int, label: str) -> list[tuple[float, Any]]:
    return asyncio.run(_post_all(api, key, path, bodies, clients, label))


@dataclass
class Seeded:
    """A brand on a `serving` stack whose issuer account earned to `members` self-custody
    members (their keys kept), linked to it in the database; `writes`: each round's earn
    transactions' hashes, in order."""

    brand: dict[str, Any]
    keys: list[PrivateKey]
    wallets: list[str]
    ids: dict[str, int]
    writes: list[list[str]]


def seed(
    stack: Stack, admin_key: str, members: int, epoch_days: Sequence[int], *, batch: int = 500,
    after_round: Callable[[int, Seeded], None] | None = None,
) -> Seeded:  # fmt: skip
    """Members in the database (written directly: enrolling them through the API is not what is
    measured), then one earn round per epoch day of `epoch_days`, each crediting every member
    (`earnBatch`, `batch` members a transaction, sent from the brand's issuer account through
    Anvil's impersonation); time moves on to each round's day."""
    headers = {"Authorization": f"Bearer {admin_key}", "Idempotency-Key": uuid.uuid4().hex}
    brand = httpx.post(stack.api + "/v1/partners", json={"name": "Bench Brand", "issue_budget_points": 10**15},
                       headers=headers, timeout=60).json()  # fmt: skip
    for _ in range(600):
        got = httpx.get(f"{stack.api}/v1/partners/{brand['id']}", headers=headers, timeout=60).json()
        if got["status"] == "active":
            break
        time.sleep(0.1)
    else:
        raise SystemExit("the brand's issuer account was not provisioned")
    rpc = Rpc(stack.rpc_url)
    issuer, token = brand["issuer_address"], stack.deployment.token_address
    rpc.call("anvil_impersonateAccount", [issuer])
    rpc.call("anvil_setBalance", [issuer, hex(10**24)])

    keys = [PrivateKey(keccak(text=f"bench metrics member {i}")) for i in range(members)]
    wallets: list[str] = [to_checksum_address(keccak(k.public_key.format(compressed=False)[1:])[-20:]) for k in keys]
    engine = create_engine(stack.database_url)
    now = datetime.now(UTC)
    with engine.begin() as db:
        for start in range(0, members, 10_000):
            db.execute(
                insert(Member),
                [{"external_id": f"bench-{i}", "wallet_address": w, "custodial": False, "smart_wallet": False,
                  "created_at": now} for i, w in enumerate(wallets[start : start + 10_000], start)],
            )  # fmt: skip
        ids: dict[str, int] = {w: i for w, i in db.execute(select(Member.wallet_address, Member.id))}
        for start in range(0, members, 10_000):
            db.execute(
                insert(MemberLink),
                [{"member_id": ids[w], "partner_id": brand["id"], "source": "enrolment", "created_at": now}
                 for w in wallets[start : start + 10_000]],
            )  # fmt: skip
    engine.dispose()

    seeded = Seeded(brand, keys, wallets, ids, [])
    epoch = 0
    for round_, day in enumerate(epoch_days):
        if day > epoch:
            rpc.call("evm_increaseTime", [(day - epoch) * 86_400])
            rpc.call("evm_mine", [])
            epoch = day
        txs = []
        for b in range(0, members, batch):
            chunk = wallets[b : b + batch]
            data = keccak(text="earnBatch(address[],uint256[],uint256)")[:4] + abi_encode(
                ["address[]", "uint256[]", "uint256"],
                [chunk, earned(round_, b, len(chunk)), 10_000 + round_ * 1_000 + b // batch],
            )
            txs.append({"from": issuer, "to": token, "data": "0x" + data.hex(), "gas": hex(29_000_000)})
        seeded.writes.append(send_all(rpc, txs, f"earn round {round_ + 1}/{len(epoch_days)}"))
        if after_round is not None:
            after_round(round_, seeded)
    return seeded


def earned(round_: int, first: int, count: int) -> list[int]:
    """What `seed` credits the members `first`.. of a round: 10 to 16 points."""
    return [10 + (round_ + first + i) % 7 for i in range(count)]
