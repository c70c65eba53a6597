"""Using the API from the terminal: partners, members, the catalog, earning, redeeming, status."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import click
import httpx

from loyalty.paths import VAR

API_URL = "http://127.0.0.1:8000"


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


@click.group()
def partners() -> None:
    """Partner brands (admin)."""


@partners.command("create")
@click.argument("name")
@click.option("--budget", "budget_points", type=int, required=True, help="Points the partner may earn.")
@with_api
def partners_create(name: str, budget_points: int, api_url: str, key: str | None) -> None:
    """Create a partner; prints its API key once."""
    _call(api_url, key, "POST", "/v1/partners", {"name": name, "issue_budget_points": budget_points})


@click.group()
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


@click.group()
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


@click.command()
@click.argument("member_id", type=int)
@click.argument("amount_points", type=int)
@click.option("--reason", default="", help="Why (an order number, say).")
@with_api
def earn(member_id: int, amount_points: int, reason: str, api_url: str, key: str | None) -> None:
    """Earn points to a member (with a partner's --key)."""
    _call(api_url, key, "POST", "/v1/earn", {"member_id": member_id, "amount_points": amount_points, "reason": reason})


@click.command()
@click.argument("member_id", type=int)
@click.argument("reward_id", type=int)
@with_api
def redeem(member_id: int, reward_id: int, api_url: str, key: str | None) -> None:
    """Redeem a reward for a custodial member (with the reward's partner's --key)."""
    _call(api_url, key, "POST", "/v1/redemptions", {"member_id": member_id, "reward_id": reward_id})


@click.command()
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
