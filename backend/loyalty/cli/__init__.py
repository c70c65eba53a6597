"""The `loyalty` command line, one module per concern: `stack` runs the service (`up`, `serve`,
`worker`, `deploy`), `client` uses the API (`partners`, `members`, `catalog`, `earn`, `redeem`,
`status`), `audit` checks the program (`audit verify`, `audit reconcile`)."""

from __future__ import annotations

import click

from loyalty import __version__
from loyalty.cli import audit, client, stack


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loyalty")
def main() -> None:
    """loyalty-ledger: loyalty points on an EVM chain."""


for command in (
    stack.up,
    stack.serve,
    stack.worker,
    stack.deploy,
    client.partners,
    client.members,
    client.catalog,
    client.earn,
    client.redeem,
    client.status,
    audit.audit,
):
    main.add_command(command)
