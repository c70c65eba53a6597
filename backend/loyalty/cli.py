"""The `loyalty` command line."""

from __future__ import annotations

import os
import signal
import threading
from typing import get_args

import click
from eth_account import Account
from web3 import HTTPProvider, Web3

from loyalty import __version__
from loyalty.deploy import TokenParams, deploy_token
from loyalty.devchain import ChainKind, start_node, stop_node


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loyalty")
def main() -> None:
    """loyalty-ledger: loyalty points on an EVM chain."""


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
    help="JSON-RPC port on 127.0.0.1 (env CHAIN_PORT).",
)
def up(kind: ChainKind, port: int) -> None:
    """Start a local chain, deploy the token once, and keep running until Ctrl-C."""
    process = start_node(kind, port)
    try:
        w3 = Web3(HTTPProvider(f"http://127.0.0.1:{port}"))
        deployment, created = deploy_token(w3, w3.eth.accounts[0])
        click.echo(f"chain     {kind} on http://127.0.0.1:{port} (chain id {deployment.chain_id})")
        click.echo(
            f"token     {deployment.token_address} ({'deployed now' if created else 'reused'}, "
            f"block {deployment.block_number})"
        )
        click.echo(f"admin     {deployment.admin} (the node's first development account)")
        click.echo(
            "next      brownie console, or `brownie run scripts/deploy.py` against this chain; "
            "Ctrl-C stops the chain (its state stays under var/chain/)"
        )
        stopped = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopped.set())
        while not stopped.wait(0.5):
            if process.poll() is not None:
                raise click.ClickException(f"the {kind} node exited with {process.returncode}")
    finally:
        click.echo("stopping the chain ...")
        stop_node(process)


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


if __name__ == "__main__":
    main()
