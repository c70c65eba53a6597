"""Running the stack: `up` (a local chain, the token and the API), `serve`, `worker`, `deploy`."""

from __future__ import annotations

import gc
import os
import signal
import threading
from typing import get_args

import click
from eth_account import Account
from web3 import HTTPProvider, Web3

from loyalty.chain.deploy import TokenParams, deploy_exchange, deploy_token
from loyalty.chain.devchain import ChainKind, start_node, stop_node
from loyalty.cli.wiring import log_to_stderr, runtime_or_exit
from loyalty.errors import ChainUnavailableError
from loyalty.paths import VAR
from loyalty.settings import Settings

DUMP_EVERY_S = 5  # how much of `make up`'s chain a kill -9 can lose (the outbox sends it again)


@click.command()
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
    """Start a local chain, deploy the token and the exchange once, and serve the API until Ctrl-C."""
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
        exchange, _ = deploy_exchange(w3, w3.eth.accounts[0], relayer=w3.eth.accounts[0])
        os.environ["RPC_URL"] = rpc_url
        os.environ.setdefault("TOKEN_ADDRESS", deployment.token_address)
        settings = Settings.from_env()
        api = f"http://127.0.0.1:{api_port}"
        click.echo(f"chain     {kind} on {rpc_url} (chain id {deployment.chain_id})")
        click.echo(
            f"token     {deployment.token_address} ({'deployed now' if created else 'reused'}, "
            f"block {deployment.block_number})"
        )
        click.echo(f"exchange  {exchange.exchange_address} (settles in TestDollar {exchange.settlement_token})")
        click.echo(f"database  {settings.database_url}")
        click.echo(f"api       {api}  (OpenAPI docs: {api}/docs)")
        click.echo(f"web UI    {api}/  (wallet, console, explorer)")
        where = "LOYALTY_ADMIN_KEY" if os.environ.get("LOYALTY_ADMIN_KEY") else VAR / "admin.key"
        click.echo(f"admin key {settings.admin_api_key[:8]}...  (the whole key: {where})")
        click.echo('next      see README "Walk-through"; Ctrl-C stops the API and the chain (state stays under var/)')
        _serve(settings, "127.0.0.1", api_port, run_outbox=True)
    finally:
        click.echo("stopping the chain ...")
        stop_node(process)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, envvar="API_PORT", help="Port (env API_PORT).")
@click.option(
    "--outbox/--no-outbox",
    default=True,
    show_default=True,
    help="Run the outbox writer beside the API (else run `loyalty worker`).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    envvar="API_WORKERS",
    help="API processes sharing the port (env API_WORKERS): one per core serves more at once; each keeps "
    "its own replay of the chain.",
)
def serve(host: str, port: int, outbox: bool, workers: int) -> None:
    """Serve the API and the web UI against the chain and database in the environment (RPC_URL,
    DATABASE_URL, ...)."""
    _serve(Settings.from_env(), host, port, run_outbox=outbox, workers=workers)


@click.command()
def worker() -> None:
    """Run the outbox writer alone: drains accepted earns and redemptions onto the chain, and
    sends webhook deliveries.

    Any number may run: the one holding the database's writer lease writes, the others stand by
    and take over when it stops (each sends webhooks, claiming what it sends)."""
    from loyalty.workers.outbox import OutboxWriter
    from loyalty.workers.webhooks import WebhookSender, run_sender

    log_to_stderr()
    runtime = runtime_or_exit(Settings.from_env())
    writer = OutboxWriter(runtime, role="worker")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    from loyalty.chain.client import redacted

    click.echo(
        f"outbox writer for token {runtime.token.address} at {redacted(runtime.settings.rpc_url)}; Ctrl-C stops it"
    )
    gc.collect()
    gc.freeze()  # as the API does: no full garbage-collector passes over startup objects while holding the write lock
    sender = run_sender(WebhookSender(runtime), stop)
    writer.run(stop)
    sender.join(timeout=10)
    runtime.close()


@click.command()
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


def _serve(settings: Settings, host: str, port: int, *, run_outbox: bool, workers: int = 1) -> None:
    import uvicorn

    from loyalty.web.site import create_site

    _check_port_free(host, port, "the API")
    log_to_stderr()
    runtime = runtime_or_exit(settings)
    if workers == 1:
        app = create_site(settings, run_outbox=run_outbox, runtime=runtime)
        uvicorn.run(app, host=host, port=port, log_level="warning")
        return
    runtime.close()  # checked here; each worker process builds its own from the same environment
    os.environ["LOYALTY_SERVE_OUTBOX"] = "1" if run_outbox else "0"  # only one holds the writer lease at a time
    uvicorn.run(
        "loyalty.web.site:site_from_env", factory=True, workers=workers, host=host, port=port, log_level="warning"
    )


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _check_port_free(host: str, port: int, what: str) -> None:
    import socket

    with socket.socket() as sock:
        if sock.connect_ex((host, port)) == 0:
            raise click.ClickException(
                f"port {port} is already in use by another process: stop it, or give {what} another port"
            )
