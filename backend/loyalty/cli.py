"""The `loyalty` command line: run the stack (`up`, `serve`, `worker`, `deploy`), use the API
(`partners`, `members`, `catalog`, `earn`, `redeem`, `status`) and audit (`audit verify`,
`audit reconcile`)."""

from __future__ import annotations

import gc
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import click
import httpx
from eth_account import Account
from web3 import HTTPProvider, Web3

from loyalty import __version__
from loyalty.deploy import TokenParams, deploy_token
from loyalty.devchain import ChainKind, start_node, stop_node
from loyalty.errors import ChainUnavailableError
from loyalty.paths import VAR
from loyalty.settings import Settings

API_URL = "http://127.0.0.1:8000"
DUMP_EVERY_S = 5  # how much of `make up`'s chain a kill -9 can lose (the outbox sends it again)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loyalty")
def main() -> None:
    """loyalty-ledger: loyalty points on an EVM chain."""


# ------------------------------------------------------------------------------ running it
@main.command()
@click.option(
    "--chain",
    "kind",
    type=click.Choice(get_args(ChainKind)),
    default="anvil",
    show_default=True,
    envvar="LOYALTY_CHAIN",
    help="Local node to run (env LOYALTY_CHAIN).",
)
@click.option(
    "--port",
    type=int,
    default=8545,
    show_default=True,
    envvar="CHAIN_PORT",
    help="Chain JSON-RPC port on 127.0.0.1 (env CHAIN_PORT).",
)
@click.option(
    "--api-port",
    type=int,
    default=8000,
    show_default=True,
    envvar="API_PORT",
    help="API port on 127.0.0.1 (env API_PORT).",
)
def up(kind: ChainKind, port: int, api_port: int) -> None:
    """Start a local chain, deploy the token once, and serve the API until Ctrl-C."""
    _check_port_free("127.0.0.1", api_port, "the API (--api-port, env API_PORT)")
    signal.signal(signal.SIGTERM, _exit_on_signal)  # a SIGTERM stops the chain too, as Ctrl-C does
    try:
        process = start_node(kind, port, dump_every_s=DUMP_EVERY_S)
    except ChainUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        rpc_url = f"http://127.0.0.1:{port}"
        w3 = Web3(HTTPProvider(rpc_url))
        deployment, created = deploy_token(w3, w3.eth.accounts[0])
        os.environ["RPC_URL"] = rpc_url
        os.environ.setdefault("TOKEN_ADDRESS", deployment.token_address)
        settings = Settings.from_env()
        api = f"http://127.0.0.1:{api_port}"
        click.echo(f"chain     {kind} on {rpc_url} (chain id {deployment.chain_id})")
        click.echo(
            f"token     {deployment.token_address} ({'deployed now' if created else 'reused'}, "
            f"block {deployment.block_number})"
        )
        click.echo(f"database  {settings.database_url}")
        click.echo(f"api       {api}  (OpenAPI docs: {api}/docs)")
        where = "LOYALTY_ADMIN_KEY" if os.environ.get("LOYALTY_ADMIN_KEY") else VAR / "admin.key"
        click.echo(f"admin key {settings.admin_api_key[:8]}...  (the whole key: {where})")
        click.echo('next      see README "Walk-through"; Ctrl-C stops the API and the chain (state stays under var/)')
        _serve(settings, "127.0.0.1", api_port, run_outbox=True)
    finally:
        click.echo("stopping the chain ...")
        stop_node(process)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, envvar="API_PORT", help="Port (env API_PORT).")
@click.option(
    "--outbox/--no-outbox",
    default=True,
    show_default=True,
    help="Run the outbox writer beside the API (else run `loyalty worker`).",
)
def serve(host: str, port: int, outbox: bool) -> None:
    """Serve the API against the chain and database in the environment (RPC_URL, DATABASE_URL, ...)."""
    _serve(Settings.from_env(), host, port, run_outbox=outbox)


@main.command()
def worker() -> None:
    """Run the outbox writer alone: drains accepted earns and redemptions onto the chain.

    Any number may run: the one holding the database's writer lease writes, the others stand by
    and take over when it stops."""
    from loyalty.outbox import OutboxWriter

    _log_to_stderr()
    runtime = _runtime(Settings.from_env())
    writer = OutboxWriter(runtime, role="worker")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    from loyalty.chain import redacted

    click.echo(
        f"outbox writer for token {runtime.chain.token.address} at {redacted(runtime.settings.rpc_url)}; Ctrl-C stops it"
    )
    gc.collect()
    gc.freeze()  # as the API does: no full garbage-collector passes over startup objects while holding the write lock
    writer.run(stop)
    runtime.close()


def _log_to_stderr() -> None:
    """Long-running commands log what the service does (state changes, not every pass)."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _runtime(settings: Settings) -> Any:
    """The service wired from `settings`, or a one-line error saying what to do."""
    from loyalty.errors import ConfigurationError
    from loyalty.runtime import build

    try:
        return build(settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--rpc-url", envvar="RPC_URL", required=True, help="JSON-RPC URL of the network (env RPC_URL).")
@click.option("--name", default=TokenParams.name, show_default=True, help="Token and EIP-712 domain name.")
@click.option("--symbol", default=TokenParams.symbol, show_default=True, help="Token symbol.")
@click.option(
    "--epoch-length",
    "epoch_length_s",
    type=int,
    default=TokenParams.epoch_length_s,
    show_default=True,
    help="Seconds per epoch.",
)
@click.option(
    "--validity-epochs",
    type=int,
    default=TokenParams.validity_epochs,
    show_default=True,
    help="Epochs points stay valid.",
)
@click.option("--admin", default=None, help="Admin and pauser address (default: the deployer).")
def deploy(rpc_url: str, name: str, symbol: str, epoch_length_s: int, validity_epochs: int, admin: str | None) -> None:
    """Deploy the token to any EVM network, or show the deployment already recorded for it.

    The deployer's key comes from the environment variable DEPLOYER_PRIVATE_KEY; without it the
    node's first unlocked account deploys (development chains only).
    """
    w3 = Web3(HTTPProvider(rpc_url))
    key = os.environ.get("DEPLOYER_PRIVATE_KEY")
    deployer = Account.from_key(key) if key else w3.eth.accounts[0]
    params = TokenParams(name, symbol, epoch_length_s, validity_epochs)
    deployment, created = deploy_token(w3, deployer, params, admin=admin)
    click.echo(
        f"{'deployed' if created else 'reused'} {deployment.token_address} on chain {deployment.chain_id} "
        f"(block {deployment.block_number}, tx {deployment.tx_hash})"
    )


def _serve(settings: Settings, host: str, port: int, *, run_outbox: bool) -> None:
    import uvicorn

    from loyalty.api.app import create_app

    _check_port_free(host, port, "the API")
    _log_to_stderr()
    runtime = _runtime(settings)
    uvicorn.run(create_app(settings, run_outbox=run_outbox, runtime=runtime), host=host, port=port, log_level="warning")


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _check_port_free(host: str, port: int, what: str) -> None:
    import socket

    with socket.socket() as sock:
        if sock.connect_ex((host, port)) == 0:
            raise click.ClickException(
                f"port {port} is already in use by another process: stop it, or give {what} another port"
            )


# ----------------------------------------------------------------------------- API client
api_options = [
    click.option(
        "--api-url", envvar="LOYALTY_API_URL", default=API_URL, show_default=True, help="The API (env LOYALTY_API_URL)."
    ),
    click.option(
        "--key",
        envvar="LOYALTY_API_KEY",
        default=None,
        help="API key (env LOYALTY_API_KEY; default: the admin key in var/admin.key).",
    ),
]


def with_api(fn: Any) -> Any:
    for option in reversed(api_options):
        fn = option(fn)
    return fn


def _call(api_url: str, key: str | None, method: str, path: str, body: Any = None) -> Any:
    key = key or os.environ.get("LOYALTY_ADMIN_KEY") or (VAR / "admin.key").read_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    if method == "POST":
        headers["Idempotency-Key"] = uuid.uuid4().hex
    try:
        response = httpx.request(method, api_url + path, json=body, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach the API at {api_url}: {exc}") from exc
    data = response.json()
    if response.status_code >= 400:
        raise click.ClickException(f"{data.get('code')}: {data.get('detail')}")
    click.echo(json.dumps(data, indent=2))
    return data


@main.group()
def partners() -> None:
    """Partner brands (admin)."""


@partners.command("create")
@click.argument("name")
@click.option("--budget", "budget_points", type=int, required=True, help="Points the partner may earn.")
@with_api
def partners_create(name: str, budget_points: int, api_url: str, key: str | None) -> None:
    """Create a partner; prints its API key once."""
    _call(api_url, key, "POST", "/v1/partners", {"name": name, "issue_budget_points": budget_points})


@main.group()
def members() -> None:
    """Program members."""


@members.command("create")
@click.argument("external_id")
@click.option("--wallet", "wallet_address", default=None, help="The member's own address (else custodial).")
@with_api
def members_create(external_id: str, wallet_address: str | None, api_url: str, key: str | None) -> None:
    """Enrol a member."""
    body = {"external_id": external_id, **({"wallet_address": wallet_address} if wallet_address else {})}
    _call(api_url, key, "POST", "/v1/members", body)


@members.command("show")
@click.argument("member_id", type=int)
@with_api
def members_show(member_id: int, api_url: str, key: str | None) -> None:
    """A member's balance and points by expiry date."""
    _call(api_url, key, "GET", f"/v1/members/{member_id}")


@members.command("history")
@click.argument("member_id", type=int)
@with_api
def members_history(member_id: int, api_url: str, key: str | None) -> None:
    """A member's earns, redemptions and expiries with their transactions."""
    _call(api_url, key, "GET", f"/v1/members/{member_id}/history")


@main.group()
def catalog() -> None:
    """The reward catalog."""


@catalog.command("list")
@with_api
def catalog_list(api_url: str, key: str | None) -> None:
    """All rewards."""
    _call(api_url, key, "GET", "/v1/rewards")


@catalog.command("add")
@click.argument("name")
@click.option("--cost", "cost_points", type=int, required=True, help="Price in points.")
@click.option("--stock", type=int, required=True, help="Units available.")
@click.option("--description", default="", help="Shown to members.")
@with_api
def catalog_add(name: str, cost_points: int, stock: int, description: str, api_url: str, key: str | None) -> None:
    """Add a reward (with a partner's --key)."""
    body = {"name": name, "cost_points": cost_points, "stock": stock, "description": description}
    _call(api_url, key, "POST", "/v1/rewards", body)


@main.command()
@click.argument("member_id", type=int)
@click.argument("amount_points", type=int)
@click.option("--reason", default="", help="Why (an order number, say).")
@with_api
def earn(member_id: int, amount_points: int, reason: str, api_url: str, key: str | None) -> None:
    """Earn points to a member (with a partner's --key)."""
    _call(api_url, key, "POST", "/v1/earn", {"member_id": member_id, "amount_points": amount_points, "reason": reason})


@main.command()
@click.argument("member_id", type=int)
@click.argument("reward_id", type=int)
@with_api
def redeem(member_id: int, reward_id: int, api_url: str, key: str | None) -> None:
    """Redeem a reward for a custodial member (with the reward's partner's --key)."""
    _call(api_url, key, "POST", "/v1/redemptions", {"member_id": member_id, "reward_id": reward_id})


@main.command()
@with_api
def status(api_url: str, key: str | None) -> None:
    """The service's health in one block: chain, writer lease, outbox, and why it is degraded."""
    try:
        response = httpx.get(api_url + "/v1/health", timeout=30)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach the API at {api_url}: {exc}") from exc
    h = response.json()
    chain, writer, outbox = h["chain"], h["writer"], h["outbox"]
    lines = [f"status    {h['status']}", *(f"  - {reason}" for reason in h["reasons"])]
    lines.append(f"database  {h['database']}")
    if chain.get("reachable"):
        lines.append(
            f"chain     {chain['chain_id']} at {chain['rpc_url']}, block {chain['block_number']:,}, token "
            f"{chain['token_address']}; writes final after {chain['confirmations']} confirmation(s)"
        )
    else:
        lines.append(f"chain     unreachable at {chain['rpc_url']}")
    if writer.get("holder"):
        behind = writer.get("blocks_behind")
        lines.append(
            f"writer    {writer['holder']}, lease since {writer['since'][:19]}, seen {writer['last_seen_s']} s ago"
            + ("" if behind is None else f", {behind} blocks behind")
        )
    else:
        lines.append("writer    none has run")
    oldest = outbox["oldest_pending_s"]
    lines.append(
        f"outbox    {outbox['pending_earns']:,} earns pending, {outbox['reserved_redemptions']:,} redemptions reserved"
        + ("" if oldest is None else f" (oldest {oldest} s)")
        + f"; {outbox['writes_in_flight']:,} writes in flight; last hour: {outbox['failed_writes_last_hour']} failed, "
        f"{outbox['dropped_writes_last_hour']} dropped"
    )
    if outbox["partners_provisioning"]:
        lines.append(f"          {outbox['partners_provisioning']} partners being set up on-chain")
    click.echo("\n".join(lines))


# ------------------------------------------------------------------------------------ audit
@main.group()
def audit() -> None:
    """Check the program from the chain alone (verify), and the database against it (reconcile)."""


def _progress_bars() -> tuple[Callable[[str, int], Callable[[int], object]], list[Any]]:
    from tqdm import tqdm

    bars: list[Any] = []

    def progress(label: str, total: int) -> Callable[[int], object]:
        bars.append(
            tqdm(
                total=total,
                desc=label,
                unit="block" if label == "logs" else label[:-1] if label.endswith("s") else label,
                leave=False,
            )
        )
        return bars[-1].update  # type: ignore[no-any-return]

    return progress, bars


def _run_audit(rpc_url: str, token: str, from_block: int, to_block: int | None) -> Any:
    from loyalty.audit.rpc import Rpc
    from loyalty.audit.verify import verify

    progress, bars = _progress_bars()
    rpc = Rpc(rpc_url)
    try:
        return verify(rpc, token, from_block, to_block, progress)
    finally:
        for bar in bars:
            bar.close()
        rpc.close()


from_block_option = click.option(
    "--from-block",
    type=int,
    default=0,
    show_default=True,
    help="First block to read: the token's deployment or earlier.",
)


@audit.command("verify")
@click.option("--rpc", "rpc_url", envvar="RPC_URL", required=True, help="JSON-RPC URL of the chain (env RPC_URL).")
@click.option("--token", envvar="TOKEN_ADDRESS", required=True, help="The token's address (env TOKEN_ADDRESS).")
@from_block_option
@click.option("--to-block", type=int, default=None, help="Audit as of this block [default: the latest].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=VAR / "audit", show_default=True,
              help="Folder for report.json, report.html, members.csv and partners.csv.")  # fmt: skip
def audit_verify(rpc_url: str, token: str, from_block: int, to_block: int | None, out: Path) -> None:
    """Re-derive balances, liabilities and expiries from the token's events alone and check them
    against the contract. Needs no database. Exit status 1 if anything disagrees."""
    from loyalty.audit.report import write

    started = time.perf_counter()
    result = _run_audit(rpc_url, token, from_block, to_block)
    report = write(result, out)
    for check in report["checks"]:
        click.echo(
            f"{check['status']:<5} {check['name']:<18} {check['checked']:>10,} checked  {check['failed']:>6,} failed"
        )
    f = report["figures"]
    click.echo(
        f"\n{f['members']:,} members, {f['issuers']:,} issuers, {result.events:,} earn/redeem events as of block "
        f"{report['block_number']:,}: outstanding {f['outstanding_points']:,}, expired {f['expired_points']:,} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    click.echo(f"{len(report['discrepancies']):,} discrepancies; report in {out / 'report.html'}")
    raise SystemExit(0 if result.clean else 1)


@audit.command("reconcile")
@from_block_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=VAR / "audit", show_default=True,
              help="Folder for reconcile.json.")  # fmt: skip
def audit_reconcile(from_block: int, out: Path) -> None:
    """Compare the database (DATABASE_URL) with the chain (RPC_URL, TOKEN_ADDRESS): earns, mints,
    redemptions, burns and members' net points. Exit status 1 if anything disagrees."""
    from dataclasses import asdict

    from loyalty.audit.reconcile import reconcile

    runtime = _runtime(Settings.from_env())
    result = _run_audit(runtime.settings.rpc_url, runtime.chain.token.address, from_block, None)
    with runtime.sessions() as session:
        findings = reconcile(session, result)
    runtime.close()
    out.mkdir(parents=True, exist_ok=True)
    body = {"block_number": result.block_number, "findings": [asdict(f) for f in findings], "clean": not findings}
    (out / "reconcile.json").write_text(json.dumps(body, indent=2) + "\n")
    for finding in findings[:50]:
        where = " ".join(x for x in (finding.row, finding.tx_hash) if x)
        click.echo(f"{finding.code}: {finding.detail} [{where}]")
    if len(findings) > 50:
        click.echo(f"... and {len(findings) - 50:,} more")
    click.echo(f"{len(findings):,} findings as of block {result.block_number:,}; written to {out / 'reconcile.json'}")
    raise SystemExit(0 if not findings else 1)


if __name__ == "__main__":
    main()
