"""The `loyalty` command line, one module per concern: `stack` runs the service (`up`, `serve`,
`worker`, `deploy`), `client` uses the API (`partners`, `auditors`, `members`, `catalog`,
`rules`, `campaigns`, `purchases`, `events`, `programs`, `agreements`, `exchanges`, `settlement`, `earn`, `earns`, `redeem`, `redemptions`, `donations`, `metrics`, `leaderboards`, `challenges`, `status`, `webhooks`), `audit` checks the program (`audit verify`, `audit reconcile`)."""

from __future__ import annotations

from typing import Any

import click

from loyalty import __version__
from loyalty.cli import audit, client, stack
from loyalty.errors import LoyaltyError


class _Commands(click.Group):
    """Every error the service raises (an unreachable chain, a wrong token, a refused
    configuration) ends a command with one line and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LoyaltyError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loyalty")
def main() -> None:
    """loyalty-ledger: loyalty points on an EVM chain."""


for command in (
    stack.up,
    stack.serve,
    stack.worker,
    stack.deploy,
    client.partners,
    client.auditors,
    client.members,
    client.catalog,
    client.rules,
    client.campaigns,
    client.purchases,
    client.events,
    client.programs,
    client.agreements,
    client.exchanges,
    client.settlement,
    client.earn,
    client.earns,
    client.redeem,
    client.redemptions,
    client.donations,
    client.metrics,
    client.leaderboards,
    client.challenges,
    client.status,
    client.whoami,
    client.webhooks,
    audit.audit,
):
    main.add_command(command)
