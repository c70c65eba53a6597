"""Using the API from the terminal: partners, auditors, members, the catalog, earning, redeeming, status.
Every refusal is one line (`code: detail`) and a non-zero exit."""

from __future__ import annotations

import csv
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote, urlencode

import click
import httpx
from tqdm import tqdm

from loyalty.domain import webhooks as webhook_types
from loyalty.paths import VAR


def default_api_url() -> str:
    """LOYALTY_API_URL, else the local API on API_PORT (8000), as `make up` serves it."""
    return os.environ.get("LOYALTY_API_URL") or f"http://127.0.0.1:{os.environ.get('API_PORT', '8000')}"


api_options = [
    click.option(
        "--api-url",
        default=default_api_url,
        show_default="LOYALTY_API_URL, else http://127.0.0.1:$API_PORT (8000)",
        help="The API.",
    ),
    click.option(
        "--key",
        envvar="LOYALTY_API_KEY",
        default=None,
        help="API key or member session token (env LOYALTY_API_KEY; default: the admin key in var/admin.key).",
    ),
]


def with_api(fn: Any) -> Any:
    for option in reversed(api_options):
        fn = option(fn)
    return fn


def _key(key: str | None) -> str:
    if key or (key := os.environ.get("LOYALTY_ADMIN_KEY")):
        return key
    try:
        return (VAR / "admin.key").read_text().strip()
    except OSError as exc:
        raise click.ClickException(
            f"no API key: pass --key or set LOYALTY_API_KEY ({VAR / 'admin.key'} is not there)"
        ) from exc


def request(
    api_url: str, key: str | None, method: str, path: str, body: Any = None, *, client: httpx.Client | None = None
) -> Any:
    """One API call; a refusal or an unreachable API is a one-line `ClickException`."""
    headers = {"Authorization": f"Bearer {_key(key)}"}
    if method in ("POST", "PATCH", "DELETE"):
        headers["Idempotency-Key"] = uuid.uuid4().hex
    try:
        response = (client or httpx).request(method, api_url + path, json=body, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach the API at {api_url}: {type(exc).__name__}") from exc
    try:
        data = response.json() if response.content else None
    except ValueError as exc:
        raise click.ClickException(
            f"{api_url} answered {response.status_code} with no JSON: is it the loyalty API?"
        ) from exc
    if response.status_code >= 400:
        code, detail = (
            (data.get("code"), data.get("detail")) if isinstance(data, dict) else (response.status_code, data)
        )
        raise click.ClickException(f"{code}: {detail}")
    return data


def _call(api_url: str, key: str | None, method: str, path: str, body: Any = None) -> Any:
    data = request(api_url, key, method, path, body)
    click.echo(json.dumps(data, indent=2))
    return data


def _list(api_url: str, key: str | None, path: str, limit: int, cursor: str | None, **filters: Any) -> None:
    """One page of a list, as JSON (`next_cursor` fetches the next)."""
    query = {
        "limit": limit,
        **({"cursor": cursor} if cursor else {}),
        **{k: v for k, v in filters.items() if v is not None},
    }
    _call(api_url, key, "GET", f"{path}?{urlencode(query)}")


def program_option(fn: Any) -> Any:
    """`--program`: the program to act in (default: the first; for a list, every one)."""
    return click.option(
        "--program", "program_id", type=click.IntRange(1), default=None, help="The program (default: the first)."
    )(fn)


def _in_program(body: Any, program_id: int | None) -> Any:
    """A JSON body from a file, in `--program` if given (it wins over the file's `program_id`)."""
    if program_id is not None:
        if not isinstance(body, dict):
            raise click.BadParameter("the file holds no JSON object to add program_id to")
        body["program_id"] = program_id
    return body


def _query(**params: Any) -> str:
    shown = {k: v for k, v in params.items() if v is not None}
    return f"?{urlencode(shown)}" if shown else ""


def page_options(fn: Any) -> Any:
    fn = click.option("--cursor", default=None, help="`next_cursor` of the page before.")(fn)
    return click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="Rows per page.")(
        fn
    )


# ---------------------------------------------------------------------------------- partners
@click.group()
def partners() -> None:
    """Partner brands (admin)."""


def parse_rate(text: str) -> tuple[int, int]:
    """`CASH/POINTS`, e.g. 500/1000: minor units of money per points."""
    cash, _, points = text.partition("/")
    if not (cash.isdigit() and points.isdigit() and int(points) > 0):
        raise click.BadParameter(f"{text!r} is not CASH/POINTS, e.g. 500/1000 for $5 per 1,000 points")
    return int(cash), int(points)


def _donation_rate(rate: str, currency: str) -> dict[str, Any]:
    cash_minor, points = parse_rate(rate)
    return {"cash_minor": cash_minor, "points": points, "currency": currency}


rate_option = click.option(
    "--rate", default=None, help="A charity's rate: CASH/POINTS in minor units, e.g. 500/1000 ($5 per 1,000 points)."
)
currency_option = click.option("--currency", default="USD", show_default=True, help="The charity's currency.")


@partners.command("create")
@click.argument("name")
@click.option("--budget", "budget_points", type=int, default=None, help="Points the partner may earn (a brand).")
@click.option("--charity", is_flag=True, help="A charity members donate points to (with --rate; no budget).")
@rate_option
@currency_option
@with_api
def partners_create(
    name: str, budget_points: int | None, charity: bool, rate: str | None, currency: str, api_url: str,
    key: str | None,
) -> None:  # fmt: skip
    """Create a partner (a brand with --budget, or a --charity with its --rate); prints its API key once."""
    if charity != (rate is not None) or charity == (budget_points is not None):
        raise click.UsageError("give a brand's --budget, or --charity with its --rate")
    body: dict[str, Any]
    if charity:
        body = {"name": name, "kind": "charity", "donation_rate": _donation_rate(str(rate), currency)}
    else:
        body = {"name": name, "issue_budget_points": budget_points}
    _call(api_url, key, "POST", "/v1/partners", body)


@partners.command("donation-rate")
@click.argument("partner_id", type=int)
@click.option("--rate", required=True, help="CASH/POINTS in minor units, e.g. 250/1000.")
@currency_option
@with_api
def partners_donation_rate(partner_id: int, rate: str, currency: str, api_url: str, key: str | None) -> None:
    """Publish a charity's new rate: later donations are worth it, earlier ones keep theirs."""
    _call(api_url, key, "PUT", f"/v1/partners/{partner_id}/donation-rate", _donation_rate(rate, currency))


@partners.command("list")
@page_options
@with_api
def partners_list(limit: int, cursor: str | None, api_url: str, key: str | None) -> None:
    """Partners, oldest first (admin, auditors)."""
    _list(api_url, key, "/v1/partners", limit, cursor)


@partners.command("show")
@click.argument("partner_id", type=int)
@with_api
def partners_show(partner_id: int, api_url: str, key: str | None) -> None:
    """A partner and its status."""
    _call(api_url, key, "GET", f"/v1/partners/{partner_id}")


@partners.command("budget")
@click.argument("partner_id", type=int)
@click.option("--program", "program_id", type=int, default=None, help="The program (default: the first).")
@with_api
def partners_budget(partner_id: int, program_id: int | None, api_url: str, key: str | None) -> None:
    """A partner's budget in a program: granted, left on-chain, used, pending, available."""
    query = f"?program_id={program_id}" if program_id is not None else ""
    _call(api_url, key, "GET", f"/v1/partners/{partner_id}/budget{query}")


@partners.command("grant-budget")
@click.argument("partner_id", type=int)
@click.argument("amount_points", type=int)
@click.option("--program", "program_id", type=int, default=None, help="The program (default: the first).")
@with_api
def partners_grant_budget(
    partner_id: int, amount_points: int, program_id: int | None, api_url: str, key: str | None
) -> None:
    """Grant a partner more budget in a program (admin); it goes on-chain through the outbox writer."""
    body = {"amount_points": amount_points, "program_id": program_id}
    _call(api_url, key, "POST", f"/v1/partners/{partner_id}/budget/grants", body)


@partners.command("join")
@click.argument("partner_id", type=int)
@click.argument("program_id", type=int)
@click.option("--budget", "budget_points", type=int, required=True, help="Points it may earn in that program.")
@with_api
def partners_join(partner_id: int, program_id: int, budget_points: int, api_url: str, key: str | None) -> None:
    """Let a brand issue in another program (admin): an issuer account of its own there."""
    body = {"program_id": program_id, "issue_budget_points": budget_points}
    _call(api_url, key, "POST", f"/v1/partners/{partner_id}/programs", body)


@partners.command("programs")
@click.argument("partner_id", type=int)
@with_api
def partners_programs(partner_id: int, api_url: str, key: str | None) -> None:
    """The programs a brand issues in, with its issuer account in each."""
    _call(api_url, key, "GET", f"/v1/partners/{partner_id}/programs")


@partners.command("agreement-signer")
@click.argument("partner_id", type=int)
@click.option("--set", "address", default=None, help="Sign the brand's agreements with this address from now on.")
@click.option("--clear", is_flag=True, help="Sign them with the brand's issuer account again.")
@with_api
def partners_agreement_signer(partner_id: int, address: str | None, clear: bool, api_url: str, key: str | None) -> None:
    """Who signs the brand's rate agreements; --set or --clear changes it (the brand's own --key)."""
    if address is not None and clear:
        raise click.UsageError("--set and --clear go alone")
    path = f"/v1/partners/{partner_id}/agreement-signer"
    if address is None and not clear:
        _call(api_url, key, "GET", path)
    else:
        _call(api_url, key, "PUT", path, {"address": address})


@partners.command("rotate-key")
@click.argument("partner_id", type=int)
@with_api
def partners_rotate_key(partner_id: int, api_url: str, key: str | None) -> None:
    """A new API key for the partner (prints it once); the old one is refused."""
    _call(api_url, key, "POST", f"/v1/partners/{partner_id}/key-rotations")


@partners.command("deactivate")
@click.argument("partner_id", type=int)
@with_api
def partners_deactivate(partner_id: int, api_url: str, key: str | None) -> None:
    """Refuse the partner's key from now on; what it accepted still goes on-chain."""
    _call(api_url, key, "POST", f"/v1/partners/{partner_id}/deactivate")


@click.group()
def auditors() -> None:
    """Auditors' read-only access (admin)."""


@auditors.command("create")
@click.argument("name")
@with_api
def auditors_create(name: str, api_url: str, key: str | None) -> None:
    """Create an auditor; prints its API key once."""
    _call(api_url, key, "POST", "/v1/auditors", {"name": name})


@auditors.command("rotate-key")
@click.argument("auditor_id", type=int)
@with_api
def auditors_rotate_key(auditor_id: int, api_url: str, key: str | None) -> None:
    """A new API key for the auditor (prints it once); the old one is refused."""
    _call(api_url, key, "POST", f"/v1/auditors/{auditor_id}/key-rotations")


@auditors.command("list")
@page_options
@with_api
def auditors_list(limit: int, cursor: str | None, api_url: str, key: str | None) -> None:
    """Auditors, oldest first."""
    _list(api_url, key, "/v1/auditors", limit, cursor)


# ----------------------------------------------------------------------------------- members
@click.group()
def members() -> None:
    """Program members."""


@members.command("create")
@click.argument("external_id")
@click.option("--wallet", "wallet_address", default=None, help="The member's own address (else custodial).")
@click.option("--smart-wallet", is_flag=True, help="The wallet is a contract that consents through ERC-1271.")
@click.option("--referral-code", default=None, help="The code of the member who referred this one.")
@with_api
def members_create(
    external_id: str,
    wallet_address: str | None,
    smart_wallet: bool,
    referral_code: str | None,
    api_url: str,
    key: str | None,
) -> None:
    """Enrol a member (a custodial one gets a one-time enrolment_token to set its passphrase)."""
    body: dict[str, Any] = {"external_id": external_id}
    if wallet_address:
        body |= {"wallet_address": wallet_address, "smart_wallet": smart_wallet}
    if referral_code:
        body["referral_code"] = referral_code
    _call(api_url, key, "POST", "/v1/members", body)


@members.command("list")
@click.option("--external-id", default=None, help="Only the member with this external id.")
@click.option("--wallet", "wallet_address", default=None, help="Only the member with this wallet.")
@click.option("--partner", "partner_id", type=int, default=None, help="Only members linked to this partner.")
@page_options
@with_api
def members_list(
    external_id: str | None,
    wallet_address: str | None,
    partner_id: int | None,
    limit: int,
    cursor: str | None,
    api_url: str,
    key: str | None,
) -> None:
    """Members, oldest first (a partner's --key lists its own)."""
    _list(
        api_url,
        key,
        "/v1/members",
        limit,
        cursor,
        external_id=external_id,
        wallet_address=wallet_address,
        partner_id=partner_id,
    )


@members.command("show")
@click.argument("member_id", type=int)
@with_api
def members_show(member_id: int, api_url: str, key: str | None) -> None:
    """A member's balance and points by expiry date."""
    _call(api_url, key, "GET", f"/v1/members/{member_id}")


@members.command("segments")
@click.argument("member_id", type=int)
@click.option("--set", "tags", multiple=True, metavar="TAG", help="Replace the tags with these (repeat it).")
@click.option("--clear", is_flag=True, help="Remove every tag.")
@click.option("--partner", "partner_id", type=int, default=None, help="Whose tags (admin, auditor).")
@with_api
def members_segments(
    member_id: int, tags: tuple[str, ...], clear: bool, partner_id: int | None, api_url: str, key: str | None
) -> None:
    """A member's segment tags at a partner (a partner's --key: its own); with --set or --clear, replace them."""
    path = f"/v1/members/{member_id}/segments" + (f"?partner_id={partner_id}" if partner_id else "")
    if tags or clear:
        _call(api_url, key, "PUT", path, {"tags": list(tags)})
    else:
        _call(api_url, key, "GET", path)


@members.command("referrals")
@click.argument("member_id", type=int)
@page_options
@with_api
def members_referrals(member_id: int, limit: int, cursor: str | None, api_url: str, key: str | None) -> None:
    """The friends a member referred, and what each referral paid."""
    _list(api_url, key, f"/v1/members/{member_id}/referrals", limit, cursor)


@members.command("history")
@click.argument("member_id", type=int)
@page_options
@with_api
def members_history(member_id: int, limit: int, cursor: str | None, api_url: str, key: str | None) -> None:
    """A member's earns, redemptions and expiries with their transactions, oldest first."""
    _list(api_url, key, f"/v1/members/{member_id}/history", limit, cursor)


@members.command("reset-passphrase")
@click.argument("member_id", type=int)
@with_api
def members_reset_passphrase(member_id: int, api_url: str, key: str | None) -> None:
    """A one-time token (an hour) for a custodial member to set its passphrase (admin: the
    operator delivers it to the member; a partner must never hold it)."""
    _call(api_url, key, "POST", f"/v1/members/{member_id}/passphrase-resets")


@members.command("link")
@click.argument("member_id", type=int)
@click.option("--partner", "partner_id", type=int, required=True, help="The partner to link the member to.")
@with_api
def members_link(member_id: int, partner_id: int, api_url: str, key: str | None) -> None:
    """Link a member to a partner, which may then see it and earn to it (admin: members enrolled
    before 0.3 that no partner earned to, or enrolled by the operator)."""
    _call(api_url, key, "POST", f"/v1/members/{member_id}/links", {"partner_id": partner_id})


@members.command("tier")
@click.argument("member_id", type=int)
@program_option
@with_api
def members_tier(member_id: int, program_id: int | None, api_url: str, key: str | None) -> None:
    """The member's tier in a program and why (metric against thresholds, next review)."""
    _call(api_url, key, "GET", f"/v1/members/{member_id}/tier{_query(program_id=program_id)}")


@members.command("subscribe")
@click.argument("member_id", type=int)
@click.option("--tier", required=True, help="The paid tier.")
@click.option("--days", "period_days", type=click.IntRange(1, 3_650), required=True, help="How long it runs.")
@click.option("--price", "price_minor", type=click.IntRange(0), required=True, help="Paid, in minor units.")
@click.option("--currency", default="USD", show_default=True)
@click.option("--payment-ref", required=True, help="The payment that paid for it (each pays once).")
@program_option
@with_api
def members_subscribe(member_id: int, api_url: str, key: str | None, **body: Any) -> None:
    """Sell the member a paid tier for a period (a renewal follows the running one)."""
    _call(api_url, key, "POST", f"/v1/members/{member_id}/tier-subscriptions", body)


@members.command("cancel-subscription")
@click.argument("member_id", type=int)
@click.argument("subscription_id", type=int)
@with_api
def members_cancel_subscription(member_id: int, subscription_id: int, api_url: str, key: str | None) -> None:
    """End a paid tier now."""
    _call(api_url, key, "POST", f"/v1/members/{member_id}/tier-subscriptions/{subscription_id}/cancel")


# ----------------------------------------------------------------------------------- catalog
@click.group()
def catalog() -> None:
    """The reward catalog."""


@catalog.command("list")
@click.option("--active/--inactive", default=None, help="Only active (or inactive) rewards.")
@click.option("--partner", "partner_id", type=int, default=None, help="Only this partner's rewards.")
@click.option("--program", "program_id", type=int, default=None, help="Only this program's rewards.")
@page_options
@with_api
def catalog_list(
    active: bool | None,
    partner_id: int | None,
    program_id: int | None,
    limit: int,
    cursor: str | None,
    api_url: str,
    key: str | None,
) -> None:
    """Rewards, oldest first."""
    shown = None if active is None else str(active).lower()
    _list(api_url, key, "/v1/rewards", limit, cursor, active=shown, partner_id=partner_id, program_id=program_id)


@catalog.command("add")
@click.argument("name")
@click.option("--cost", "cost_points", type=int, required=True, help="Price in points.")
@click.option("--stock", type=int, required=True, help="Units available.")
@click.option("--description", default="", help="Shown to members.")
@click.option("--tier", default=None, help="A paid tier it buys (with --tier-days): redeeming it starts the tier.")
@click.option("--tier-days", "tier_period_days", type=click.IntRange(1, 3_650), default=None, help="For how long.")
@click.option("--program", "program_id", type=int, default=None, help="Whose points it costs (default: the first).")
@with_api
def catalog_add(
    name: str,
    cost_points: int,
    stock: int,
    description: str,
    tier: str | None,
    tier_period_days: int | None,
    program_id: int | None,
    api_url: str,
    key: str | None,
) -> None:
    """Add a reward (with a partner's --key); --tier makes it a tier paid in points."""
    body: dict[str, Any] = {"name": name, "cost_points": cost_points, "stock": stock, "description": description}
    if program_id is not None:
        body["program_id"] = program_id
    if tier is not None or tier_period_days is not None:
        body |= {"tier": tier, "tier_period_days": tier_period_days}
    _call(api_url, key, "POST", "/v1/rewards", body)


@catalog.command("update")
@click.argument("reward_id", type=int)
@click.option("--name", default=None)
@click.option("--description", default=None)
@click.option("--cost", "cost_points", type=int, default=None, help="Price in points.")
@click.option("--stock", type=int, default=None, help="Units available.")
@click.option("--active/--inactive", default=None, help="Offer it, or withdraw it.")
@with_api
def catalog_update(reward_id: int, api_url: str, key: str | None, **changes: Any) -> None:
    """Change a reward the partner (--key) owns; only the options given change."""
    body = {field: value for field, value in changes.items() if value is not None}
    if not body:
        raise click.UsageError("nothing to change: give --name, --description, --cost, --stock or --active/--inactive")
    _call(api_url, key, "PATCH", f"/v1/rewards/{reward_id}", body)


# ------------------------------------------------------------------------------------ rules
@click.group()
def rules() -> None:
    """Earning rules: versioned JSON definitions (see README, "Running a program")."""


def _json_file(file: TextIO) -> Any:
    try:
        return json.load(file)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{file.name} is not JSON: {exc}") from None


@rules.command("create")
@click.argument("file", type=click.File())
@program_option
@with_api
def rules_create(file: TextIO, program_id: int | None, api_url: str, key: str | None) -> None:
    """A new rule from a JSON definition in FILE (- for standard input), with a partner's --key."""
    _call(api_url, key, "POST", "/v1/rules", _in_program(_json_file(file), program_id))


@rules.command("list")
@click.option("--active/--inactive", default=None, help="Only active (or inactive) rules.")
@click.option("--partner", "partner_id", type=int, default=None, help="Only this partner's (admin, auditor).")
@program_option
@page_options
@with_api
def rules_list(
    active: bool | None,
    partner_id: int | None,
    program_id: int | None,
    limit: int,
    cursor: str | None,
    api_url: str,
    key: str | None,
) -> None:
    """Rules at their current versions (a partner sees its own, in every program unless --program)."""
    _list(api_url, key, "/v1/rules", limit, cursor, active=active, partner_id=partner_id, program_id=program_id)


@rules.command("show")
@click.argument("rule_id", type=int)
@click.option("--versions", is_flag=True, help="Every version, oldest first.")
@with_api
def rules_show(rule_id: int, versions: bool, api_url: str, key: str | None) -> None:
    """One rule, or all its versions."""
    _call(api_url, key, "GET", f"/v1/rules/{rule_id}" + ("/versions" if versions else ""))


@rules.command("update")
@click.argument("rule_id", type=int)
@click.argument("file", type=click.File())
@with_api
def rules_update(rule_id: int, file: TextIO, api_url: str, key: str | None) -> None:
    """Replace a rule's definition with FILE's: a new version if it differs."""
    _call(api_url, key, "PUT", f"/v1/rules/{rule_id}", _json_file(file))


@rules.command("deactivate")
@click.argument("rule_id", type=int)
@with_api
def rules_deactivate(rule_id: int, api_url: str, key: str | None) -> None:
    """The rule stops earning (its versions stay)."""
    _call(api_url, key, "POST", f"/v1/rules/{rule_id}/deactivate")


@rules.command("simulate")
@click.argument("file", type=click.File())
@program_option
@with_api
def rules_simulate(file: TextIO, program_id: int | None, api_url: str, key: str | None) -> None:
    """What the purchase in FILE (JSON: occurred_at, lines, ...) would earn; writes nothing."""
    _call(api_url, key, "POST", "/v1/rules/simulate", _in_program(_json_file(file), program_id))


# -------------------------------------------------------------------------------- purchases
@click.group()
def purchases() -> None:
    """Purchases priced by the rules, and their refunds."""


@purchases.command("record")
@click.argument("file", type=click.File())
@program_option
@with_api
def purchases_record(file: TextIO, program_id: int | None, api_url: str, key: str | None) -> None:
    """Report the order in FILE (JSON: member_id, order_id, occurred_at, currency, lines)."""
    _call(api_url, key, "POST", "/v1/purchases", _in_program(_json_file(file), program_id))


@purchases.command("show")
@click.argument("order_id")
@program_option
@with_api
def purchases_show(order_id: str, program_id: int | None, api_url: str, key: str | None) -> None:
    """One of the partner's orders, with its awards and refunds."""
    _call(api_url, key, "GET", f"/v1/purchases/{quote(order_id, safe='')}{_query(program_id=program_id)}")


@purchases.command("list")
@click.option("--member", "member_id", type=int, default=None, help="Only this member's.")
@click.option("--partner", "partner_id", type=int, default=None, help="Only this partner's (admin, auditor).")
@program_option
@page_options
@with_api
def purchases_list(
    member_id: int | None,
    partner_id: int | None,
    program_id: int | None,
    limit: int,
    cursor: str | None,
    api_url: str,
    key: str | None,
) -> None:
    """Purchases, oldest first (a partner sees its own, in every program unless --program)."""
    filters = {"member_id": member_id, "partner_id": partner_id, "program_id": program_id}
    _list(api_url, key, "/v1/purchases", limit, cursor, **filters)


@purchases.command("refund")
@click.argument("order_id")
@click.option("--refund-id", required=True, help="Your id of the refund (a retry with it refunds once).")
@click.option("--line", "lines", multiple=True, metavar="SKU=QUANTITY", help="Units returned; none: the whole order.")
@program_option
@with_api
def purchases_refund(
    order_id: str, refund_id: str, lines: tuple[str, ...], program_id: int | None, api_url: str, key: str | None
) -> None:
    """Refund an order, whole or by lines (--line latte=1 --line croissant=2)."""
    body: dict[str, Any] = {"refund_id": refund_id}
    if lines:
        body["lines"] = [_refund_line(line) for line in lines]
    if program_id is not None:
        body["program_id"] = program_id
    _call(api_url, key, "POST", f"/v1/purchases/{quote(order_id, safe='')}/refunds", body)


def _refund_line(text: str) -> dict[str, Any]:
    sku, _, quantity = text.rpartition("=")
    if not sku or not quantity.isdigit():
        raise click.BadParameter(f"{text!r} is not SKU=QUANTITY", param_hint="--line")
    return {"sku": sku, "quantity": int(quantity)}


# -------------------------------------------------------------------------------- campaigns
@click.group()
def campaigns() -> None:
    """Campaigns, each issuing from an account of its own within its on-chain budget."""


@campaigns.command("create")
@click.argument("file", type=click.File())
@program_option
@with_api
def campaigns_create(file: TextIO, program_id: int | None, api_url: str, key: str | None) -> None:
    """A campaign from the JSON in FILE (name, starts_at, ends_at, effect, budget_points, ...), with a partner's --key."""
    _call(api_url, key, "POST", "/v1/campaigns", _in_program(_json_file(file), program_id))


@campaigns.command("list")
@click.option("--active/--inactive", default=None, help="Only active (or deactivated) campaigns.")
@click.option("--partner", "partner_id", type=int, default=None, help="Only this partner's (admin, auditor).")
@program_option
@page_options
@with_api
def campaigns_list(
    active: bool | None,
    partner_id: int | None,
    program_id: int | None,
    limit: int,
    cursor: str | None,
    api_url: str,
    key: str | None,
) -> None:
    """Campaigns with their budgets (a partner sees its own, in every program unless --program)."""
    filters = {"active": active, "partner_id": partner_id, "program_id": program_id}
    _list(api_url, key, "/v1/campaigns", limit, cursor, **filters)


@campaigns.command("show")
@click.argument("campaign_id", type=int)
@with_api
def campaigns_show(campaign_id: int, api_url: str, key: str | None) -> None:
    """One campaign: its status and budget (issued, left on-chain, pending, available)."""
    _call(api_url, key, "GET", f"/v1/campaigns/{campaign_id}")


@campaigns.command("deactivate")
@click.argument("campaign_id", type=int)
@with_api
def campaigns_deactivate(campaign_id: int, api_url: str, key: str | None) -> None:
    """The campaign gives nothing more (what it gave stays)."""
    _call(api_url, key, "POST", f"/v1/campaigns/{campaign_id}/deactivate")


# ----------------------------------------------------------------------------------- events
@click.group()
def events() -> None:
    """Custom events (a review written, a store event attended), priced by `event` rules."""


@events.command("record")
@click.argument("member_id", type=int)
@click.argument("event_type")
@click.option("--event-id", required=True, help="Your id of the event (it earns once).")
@click.option("--at", "occurred_at", default=None, help="When it happened (RFC 3339; default: now).")
@click.option("--property", "properties", multiple=True, metavar="NAME=VALUE", help="A property (repeat it).")
@program_option
@with_api
def events_record(
    member_id: int,
    event_type: str,
    event_id: str,
    occurred_at: str | None,
    properties: tuple[str, ...],
    program_id: int | None,
    api_url: str,
    key: str | None,
) -> None:
    """Report that a member did something (with a partner's --key); its points are minted at once."""
    body = {
        "member_id": member_id,
        "event_id": event_id,
        "type": event_type,
        "occurred_at": occurred_at or datetime.now(UTC).isoformat(),
        "properties": dict(_pair(p) for p in properties),
        "program_id": program_id,
    }
    _call(api_url, key, "POST", "/v1/events", body)


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not name or not sep:
        raise click.BadParameter(f"{text!r} is not NAME=VALUE", param_hint="--property")
    return name, value


@events.command("list")
@click.option("--member", "member_id", type=int, default=None, help="Only this member's.")
@program_option
@page_options
@with_api
def events_list(
    member_id: int | None, program_id: int | None, limit: int, cursor: str | None, api_url: str, key: str | None
) -> None:
    """Events and enrolments that earned, oldest first (a partner sees its own, in every program unless --program)."""
    _list(api_url, key, "/v1/events", limit, cursor, member_id=member_id, program_id=program_id)


@click.group()
def programs() -> None:
    """Programs (each a points token) and their settings."""


@programs.command("create")
@click.option("--name", default=None, help="The program's name (and its token's); read from the chain with --token.")
@click.option("--symbol", default=None, help="Its token's symbol (A-Z, 0-9), for a new deployment.")
@click.option(
    "--epoch-days", type=click.IntRange(1, 49_000), default=30, show_default=True, help="Days per expiry epoch."
)
@click.option("--validity-epochs", type=click.IntRange(1, 64), default=12, show_default=True,
              help="Epochs points stay valid, the one earned in included.")  # fmt: skip
@click.option(
    "--token", "token_address", default=None, help="Register this deployed LoyaltyPoints instead of deploying."
)
@click.option("--coalition", is_flag=True, help="A coalition currency (several partners issue it).")
@click.option("--currency", default="USD", show_default=True, help="The currency purchases are priced in.")
@with_api
def programs_create(
    name: str | None, symbol: str | None, epoch_days: int, validity_epochs: int, token_address: str | None,
    coalition: bool, currency: str, api_url: str, key: str | None,
) -> None:  # fmt: skip
    """Deploy a new program's token, or register an existing one with --token (admin)."""
    body: dict[str, Any] = {"kind": "coalition" if coalition else "brand", "currency": currency}
    if token_address:
        body |= {"token_address": token_address, **({"name": name} if name else {})}
    else:
        if not name:
            raise click.UsageError("give --name for a new program (or --token to register a deployed one)")
        body |= {"name": name, "epoch_length_s": epoch_days * 86_400, "validity_epochs": validity_epochs}
        body |= {"symbol": symbol} if symbol else {}
    _call(api_url, key, "POST", "/v1/programs", body)


@programs.command("list")
@page_options
@with_api
def programs_list(limit: int, cursor: str | None, api_url: str, key: str | None) -> None:
    """Every program, oldest first (program 1 is the database's own token)."""
    _list(api_url, key, "/v1/programs", limit, cursor)


@programs.command("show")
@click.argument("program_id", type=int, default=1)
@with_api
def programs_show(program_id: int, api_url: str, key: str | None) -> None:
    """A program's settings (the first by default)."""
    _call(api_url, key, "GET", f"/v1/programs/{program_id}")


@programs.command("tiers")
@click.argument("program_id", type=int, default=1)
@click.option("--file", type=click.File(), default=None, help="Set the ladder from this JSON (admin).")
@with_api
def programs_tiers(program_id: int, file: TextIO | None, api_url: str, key: str | None) -> None:
    """A program's tier ladder; with --file, set it."""
    if file is None:
        _call(api_url, key, "GET", f"/v1/programs/{program_id}/tiers")
    else:
        _call(api_url, key, "PUT", f"/v1/programs/{program_id}/tiers", _json_file(file))


@programs.command("set")
@click.argument("program_id", type=int, default=1)
@click.option(
    "--pending-days", type=click.IntRange(0, 3_650), default=None, help="How long purchase awards stay pending."
)
@click.option("--currency", default=None, help="The currency purchases are priced in (ISO 4217: USD, EUR).")
@click.option("--name", default=None)
@click.option("--issue-fee", "issue_fee_per_point", type=click.IntRange(0), default=None,
              help="A coalition's fee per point a partner issues (settlement-token units).")  # fmt: skip
@click.option("--redemption-price", "redemption_price_per_point", type=click.IntRange(0), default=None,
              help="What a coalition pays a partner per point redeemed at it.")  # fmt: skip
@click.option("--point-value", default=None,
              help="What points are worth to a member: MINOR/POINTS in the currency, e.g. 1/1 (a cent a point).")  # fmt: skip
@with_api
def programs_set(program_id: int, point_value: str | None, api_url: str, key: str | None, **changes: Any) -> None:
    """Change a program's settings (admin)."""
    body = {k: v for k, v in changes.items() if v is not None}
    if point_value is not None:
        body["point_value_minor"], body["point_value_points"] = parse_rate(point_value)
    if not body:
        raise click.UsageError(
            "nothing to change: give --pending-days, --currency, --name, --issue-fee, --redemption-price or "
            "--point-value"
        )
    _call(api_url, key, "PATCH", f"/v1/programs/{program_id}", body)


@programs.command("statement")
@click.argument("program_id", type=int, default=1)
@click.option("--since", required=True, help="From this time (ISO 8601 with an offset).")
@click.option("--until", required=True, help="Until this time, not included.")
@with_api
def programs_statement(program_id: int, since: str, until: str, api_url: str, key: str | None) -> None:
    """A coalition program's statement for a window: fees for points issued, reimbursement for
    points redeemed, per partner, and the payments that settle them (a partner sees its own)."""
    _call(api_url, key, "GET", f"/v1/programs/{program_id}/statements?{urlencode({'since': since, 'until': until})}")


@programs.command("incoming-budget")
@click.argument("program_id", type=int)
@click.argument("points", type=int)
@with_api
def programs_incoming_budget(program_id: int, points: int, api_url: str, key: str | None) -> None:
    """Let PROGRAM_ID take POINTS more in through the exchange (admin)."""
    _call(api_url, key, "POST", f"/v1/programs/{program_id}/incoming-budget", {"points": points})


@click.group()
def agreements() -> None:
    """Rate agreements between brands for exchanging points between programs."""


@agreements.command("propose")
@click.option(
    "--source", "source_program_id", type=int, default=1, show_default=True, help="Program members give points in."
)
@click.option("--target", "target_program_id", type=int, required=True, help="Program members get points in.")
@click.option(
    "--payer", "payer_id", type=int, required=True, help="Partner that owes for the points issued on the target."
)
@click.option("--payee", "payee_id", type=int, required=True, help="Partner paid for them.")
@click.option("--rate", required=True, help="Points out per points in, as OUT:IN (3 hotel points for 1 mile: 1:3).")
@click.option("--minimum", "minimum_in", type=int, default=1, show_default=True, help="Fewest points in.")
@click.option("--step", "step_in", type=int, default=1, show_default=True, help="Points in must be a multiple of this.")
@click.option("--price", "price_per_point", type=int, default=0, show_default=True,
              help="What the payer owes per point out, in the settlement token's smallest units.")  # fmt: skip
@click.option(
    "--credit-limit", type=int, default=0, show_default=True, help="Most the payer may owe in a period (0: none)."
)
@click.option("--until", "valid_until", required=True, help="When it ends (ISO 8601 with an offset).")
@with_api
def agreements_propose(
    source_program_id: int, target_program_id: int, payer_id: int, payee_id: int, rate: str, minimum_in: int,
    step_in: int, price_per_point: int, credit_limit: int, valid_until: str, api_url: str, key: str | None,
) -> None:  # fmt: skip
    """Propose terms to another brand, signed for the calling partner (the payer or the payee)."""
    out, sep, into = rate.partition(":")
    if not sep or not out.isdigit() or not into.isdigit():
        raise click.BadParameter(f"{rate!r} is not OUT:IN, say 1:3", param_hint="--rate")
    body = {
        "source_program_id": source_program_id, "target_program_id": target_program_id, "payer_id": payer_id,
        "payee_id": payee_id, "rate_numerator": int(out), "rate_denominator": int(into), "minimum_in": minimum_in,
        "step_in": step_in, "price_per_point": price_per_point, "credit_limit": credit_limit, "valid_until": valid_until,
    }  # fmt: skip
    _call(api_url, key, "POST", "/v1/agreements", body)


@agreements.command("sign")
@click.argument("agreement_id", type=int)
@click.option("--signature", default=None, help="Your own agreement signer's signature of the agreement's typed_data.")
@with_api
def agreements_sign(agreement_id: int, signature: str | None, api_url: str, key: str | None) -> None:
    """Sign an agreement the calling partner is a party to: the outbox registers it once both did."""
    body = {"signature": signature} if signature is not None else None
    _call(api_url, key, "POST", f"/v1/agreements/{agreement_id}/sign", body)


@agreements.command("revoke")
@click.argument("agreement_id", type=int)
@with_api
def agreements_revoke(agreement_id: int, api_url: str, key: str | None) -> None:
    """Stop an agreement for future exchanges."""
    _call(api_url, key, "POST", f"/v1/agreements/{agreement_id}/revoke")


@agreements.command("show")
@click.argument("agreement_id", type=int)
@with_api
def agreements_show(agreement_id: int, api_url: str, key: str | None) -> None:
    """An agreement, its terms and its status."""
    _call(api_url, key, "GET", f"/v1/agreements/{agreement_id}")


@agreements.command("list")
@page_options
@with_api
def agreements_list(limit: int, cursor: str | None, api_url: str, key: str | None) -> None:
    """Agreements, oldest first (a partner sees those it is a party to)."""
    _list(api_url, key, "/v1/agreements", limit, cursor)


@click.group()
def exchanges() -> None:
    """Exchanges of points between programs."""


@exchanges.command("quote")
@click.argument("agreement_id", type=int)
@click.argument("amount_in", type=int)
@with_api
def exchanges_quote(agreement_id: int, amount_in: int, api_url: str, key: str | None) -> None:
    """What AMOUNT_IN points would give under a registered agreement, and what the payer would owe."""
    _call(api_url, key, "POST", "/v1/exchanges/quote", {"agreement_id": agreement_id, "amount_in": amount_in})


@exchanges.command("create")
@click.argument("agreement_id", type=int)
@click.argument("amount_in", type=int)
@click.option("--member", "member_id", type=int, default=None,
              help="The member a partner exchanges for; without it, the member signed in (its session as --key).")  # fmt: skip
@click.option("--code", "redemption_code", default=None, help="A custodial member's one-time code for this partner.")
@click.option("--signature", default=None, help="A self-custody member's signed consent (`exchanges consent`).")
@click.option("--deadline", type=int, default=None, help="The deadline of the consent signed.")
@with_api
def exchanges_create(
    agreement_id: int, amount_in: int, member_id: int | None, redemption_code: str | None, signature: str | None,
    deadline: int | None, api_url: str, key: str | None,
) -> None:  # fmt: skip
    """Exchange AMOUNT_IN points under a registered agreement: a member's own (custodial: its
    session is its consent), or a partner's for --member (with --code, a signature, or nothing
    and the member approves it)."""
    body: dict[str, Any] = {"agreement_id": agreement_id, "amount_in": amount_in}
    body |= {k: v for k, v in (("signature", signature), ("deadline", deadline)) if v is not None}
    if member_id is None:
        if redemption_code is not None:
            raise click.UsageError("--code is for a partner exchanging for a --member")
        _call(api_url, key, "POST", "/v1/me/exchanges", body)
        return
    body["member_id"] = member_id
    if redemption_code is not None:
        body["redemption_code"] = redemption_code
    _call(api_url, key, "POST", "/v1/exchanges", body)


@exchanges.command("consent")
@click.argument("agreement_id", type=int)
@click.argument("amount_in", type=int)
@click.option(
    "--member", "member_id", type=int, default=None, help="The member (a partner asking); else the member signed in."
)
@with_api
def exchanges_consent(agreement_id: int, amount_in: int, member_id: int | None, api_url: str, key: str | None) -> None:
    """The EIP-712 consent a self-custody member signs for an exchange (then `exchanges create`
    with --signature and --deadline)."""
    body: dict[str, Any] = {"agreement_id": agreement_id, "amount_in": amount_in}
    if member_id is None:
        _call(api_url, key, "POST", "/v1/me/exchanges/consents", body)
    else:
        _call(api_url, key, "POST", "/v1/exchanges/consents", {**body, "member_id": member_id})


@exchanges.command("approve")
@click.argument("exchange_id", type=int)
@click.option("--decline", is_flag=True, help="Decline it instead: nothing moves.")
@with_api
def exchanges_approve(exchange_id: int, decline: bool, api_url: str, key: str | None) -> None:
    """Approve (or --decline) an exchange a partner asked for, as the member signed in."""
    _call(api_url, key, "POST", f"/v1/me/exchanges/{exchange_id}/{'decline' if decline else 'approve'}")


@exchanges.command("show")
@click.argument("exchange_id", type=int)
@with_api
def exchanges_show(exchange_id: int, api_url: str, key: str | None) -> None:
    """An exchange: its amounts, status and transaction."""
    _call(api_url, key, "GET", f"/v1/exchanges/{exchange_id}")


@exchanges.command("list")
@click.option("--member", "member_id", type=int, default=None, help="Only this member's.")
@click.option("--status", default=None, help="Only those in this status (reserved, confirmed, voided, ...).")
@page_options
@with_api
def exchanges_list(
    member_id: int | None, status: str | None, limit: int, cursor: str | None, api_url: str, key: str | None
) -> None:
    """Exchanges, oldest first (a partner sees those it relayed or is a party to)."""
    _list(api_url, key, "/v1/exchanges", limit, cursor, member_id=member_id, status=status)


@click.group()
def settlement() -> None:
    """Settlement between brands: periods, their payments, and closing and paying them."""


@settlement.command("show")
@click.argument("period", type=int, required=False)
@with_api
def settlement_show(period: int | None, api_url: str, key: str | None) -> None:
    """A period's debts, net positions and payments (without PERIOD: the exchange and its current period)."""
    _call(api_url, key, "GET", "/v1/settlement" if period is None else f"/v1/settlement/periods/{period}")


@settlement.command("close")
@click.argument("period", type=int)
@with_api
def settlement_close(period: int, api_url: str, key: str | None) -> None:
    """Close an ended PERIOD: its net positions become at most n - 1 payments."""
    _call(api_url, key, "POST", f"/v1/settlement/periods/{period}/close")


@settlement.command("pay")
@click.argument("period", type=int)
@click.argument("index", type=int)
@click.option("--confirm", is_flag=True, help="As the creditor: confirm it was paid off-chain instead.")
@with_api
def settlement_pay(period: int, index: int, confirm: bool, api_url: str, key: str | None) -> None:
    """Pay payment INDEX of PERIOD as its debtor, in the settlement token (or --confirm it as its creditor)."""
    _call(api_url, key, "POST", f"/v1/settlement/periods/{period}/payments/{index}/{'confirm' if confirm else 'pay'}")


@settlement.command("steps")
@click.argument("step_id", type=int, required=False)
@page_options
@with_api
def settlement_steps(step_id: int | None, limit: int, cursor: str | None, api_url: str, key: str | None) -> None:
    """Settlement steps asked for and how they went (one with STEP_ID)."""
    if step_id is not None:
        _call(api_url, key, "GET", f"/v1/settlement/steps/{step_id}")
    else:
        _list(api_url, key, "/v1/settlement/steps", limit, cursor)


# ---------------------------------------------------------------------------------- earning
@click.command()
@click.argument("member_id", type=int)
@click.argument("amount_points", type=int)
@click.option("--reason", default="", help="Why (an order number, say).")
@click.option("--program", "program_id", type=int, default=None, help="The program (default: the first).")
@with_api
def earn(
    member_id: int, amount_points: int, reason: str, program_id: int | None, api_url: str, key: str | None
) -> None:
    """Earn points to a member (with a partner's --key): accepted at once, confirmed on-chain a
    moment later (`loyalty earns status ID`)."""
    body = {"member_id": member_id, "amount_points": amount_points, "reason": reason, "program_id": program_id}
    _call(api_url, key, "POST", "/v1/earn", body)


@click.group()
def earns() -> None:
    """Earns: many from a CSV file, their status, lists."""


@earns.command("batch")
@click.argument("csv_file", type=click.File("r"))
@click.option(
    "--per-request", type=click.IntRange(1, 10_000), default=1_000, show_default=True, help="Items per request."
)
@click.option("--program", "program_id", type=int, default=None, help="The program (default: the first).")
@with_api
def earn_batch(csv_file: TextIO, per_request: int, program_id: int | None, api_url: str, key: str | None) -> None:
    """Earn from a CSV file with columns member_id, amount_points and (optional) reason, in
    requests of --per-request items, each refused or accepted whole. Prints the earn ids."""
    try:
        items = [
            {
                "member_id": int(row["member_id"]),
                "amount_points": int(row["amount_points"]),
                "reason": row.get("reason") or "",
            }
            for row in csv.DictReader(csv_file)
        ]
    except (KeyError, ValueError, TypeError) as exc:
        raise click.ClickException(
            f"{csv_file.name}: needs columns member_id and amount_points, as integers ({exc})"
        ) from exc
    ids: list[int] = []
    chunks = [items[i : i + per_request] for i in range(0, len(items), per_request)]
    with httpx.Client() as client, tqdm(total=len(items), unit="earn", disable=not sys.stderr.isatty()) as bar:
        for number, chunk in enumerate(chunks, 1):
            try:
                body = {"items": chunk, "program_id": program_id}
                ids += request(api_url, key, "POST", "/v1/earn/batch", body, client=client)["ids"]
            except click.ClickException as exc:
                raise click.ClickException(
                    f"request {number} of {len(chunks)} (rows {(number - 1) * per_request + 1}-{(number - 1) * per_request + len(chunk)}) "
                    f"refused, {len(ids):,} earns accepted before it: {exc.message}"
                ) from exc
            bar.update(len(chunk))
    click.echo(json.dumps({"accepted": len(ids), "ids": ids}))


@earns.command("status")
@click.argument("earn_id", type=int)
@with_api
def earn_status(earn_id: int, api_url: str, key: str | None) -> None:
    """An earn: pending, confirmed (with its transaction) or failed (with why)."""
    _call(api_url, key, "GET", f"/v1/earn/{earn_id}")


@earns.command("list")
@click.option("--member", "member_id", type=int, default=None)
@click.option("--status", type=click.Choice(["pending", "confirmed", "failed"]), default=None)
@click.option("--after", "created_after", default=None, help="Created at or after (ISO 8601).")
@click.option("--before", "created_before", default=None, help="Created before (ISO 8601).")
@page_options
@with_api
def earn_list(
    member_id: int | None,
    status: str | None,
    created_after: str | None,
    created_before: str | None,
    limit: int,
    cursor: str | None,
    api_url: str,
    key: str | None,
) -> None:
    """Earns, oldest first (a partner's --key lists its own)."""
    _list(
        api_url,
        key,
        "/v1/earn",
        limit,
        cursor,
        member_id=member_id,
        status=status,
        created_after=created_after,
        created_before=created_before,
    )


# -------------------------------------------------------------------------------- donations
@click.group()
def donations() -> None:
    """Points members give charities: burned at the charity, worth its rate in money, never reversed."""


@donations.command("give")
@click.argument("charity_id", type=int)
@click.argument("amount_points", type=int)
@click.option("--member", "member_id", type=int, default=None,
              help="The member a partner relays for; without it, the member signed in (its session as --key).")  # fmt: skip
@click.option("--code", "redemption_code", default=None, help="A custodial member's one-time code for this partner.")
@click.option("--signature", default=None, help="A self-custody member's signed consent (`donations consent`).")
@click.option("--deadline", type=int, default=None, help="The deadline of the consent signed.")
@program_option
@with_api
def donations_give(
    charity_id: int, amount_points: int, member_id: int | None, redemption_code: str | None, signature: str | None,
    deadline: int | None, program_id: int | None, api_url: str, key: str | None,
) -> None:  # fmt: skip
    """Donate AMOUNT_POINTS to a charity: a member's own (custodial: its session is its
    consent), or a partner's for --member (with --code, a signature, or nothing and the member
    approves it as a redemption)."""
    body: dict[str, Any] = {"charity_id": charity_id, "amount_points": amount_points}
    body |= {k: v for k, v in (("signature", signature), ("deadline", deadline), ("program_id", program_id)) if v}
    if member_id is None:
        if redemption_code is not None:
            raise click.UsageError("--code is for a partner relaying for a --member")
        _call(api_url, key, "POST", "/v1/me/donations", body)
        return
    body["member_id"] = member_id
    if redemption_code is not None:
        body["redemption_code"] = redemption_code
    _call(api_url, key, "POST", "/v1/donations", body)


@donations.command("consent")
@click.argument("charity_id", type=int)
@click.argument("amount_points", type=int)
@click.option("--member", "member_id", type=int, default=None, help="The member (a partner asking); else the member signed in.")  # fmt: skip
@program_option
@with_api
def donations_consent(
    charity_id: int, amount_points: int, member_id: int | None, program_id: int | None, api_url: str, key: str | None
) -> None:
    """The EIP-712 consent a self-custody member signs for a donation (then `donations give`
    with --signature and --deadline)."""
    body: dict[str, Any] = {"charity_id": charity_id, "amount_points": amount_points, "program_id": program_id}
    if member_id is None:
        _call(api_url, key, "POST", "/v1/me/donations/consents", body)
    else:
        _call(api_url, key, "POST", "/v1/donations/consents", {**body, "member_id": member_id})


@donations.command("list")
@click.option("--charity", "charity_id", type=int, default=None, help="Only those to this charity.")
@click.option("--member", "member_id", type=int, default=None, help="Only this member's.")
@click.option("--mine", is_flag=True, help="The signed-in member's own (its session as --key).")
@page_options
@with_api
def donations_list(
    charity_id: int | None, member_id: int | None, mine: bool, limit: int, cursor: str | None, api_url: str,
    key: str | None,
) -> None:  # fmt: skip
    """Donations, oldest first (a partner: made to it or relayed by it)."""
    if mine:
        _list(api_url, key, "/v1/me/donations", limit, cursor)
    else:
        _list(api_url, key, "/v1/donations", limit, cursor, charity_id=charity_id, member_id=member_id)


@donations.command("show")
@click.argument("donation_id", type=int)
@click.option("--mine", is_flag=True, help="The signed-in member's receipt (its session as --key).")
@with_api
def donations_show(donation_id: int, mine: bool, api_url: str, key: str | None) -> None:
    """A donation; once posted, its `tx_hash` is the receipt."""
    _call(api_url, key, "GET", f"/v1/{'me/' if mine else ''}donations/{donation_id}")


@donations.command("statement")
@click.argument("charity_id", type=int)
@click.option("--since", required=True, help="From this time (ISO 8601 with an offset).")
@click.option("--until", required=True, help="Until this time, not included.")
@program_option
@with_api
def donations_statement(
    charity_id: int, since: str, until: str, program_id: int | None, api_url: str, key: str | None
) -> None:
    """What the program owes a charity for a window, beside the same donations counted from the chain."""
    query = _query(since=since, until=until, program_id=program_id)
    _call(api_url, key, "GET", f"/v1/partners/{charity_id}/donation-statement{query}")


# -------------------------------------------------------------------------------- challenges
@click.group()
def challenges() -> None:
    """A brand's goals for its members, rewarded once per period with points and/or a badge."""


@challenges.command("create")
@click.argument("name")
@click.option("--metric", type=click.Choice(["purchases", "net_spend", "points_earned", "events"]), required=True,
              help="What is counted.")  # fmt: skip
@click.option("--target", type=click.IntRange(1), required=True, help="What the metric must reach.")
@click.option("--operator", type=click.Choice(["gte", "gt"]), default="gte", show_default=True, help="How it compares.")
@click.option("--event-type", default=None, help="For --metric events: the type counted.")
@click.option("--period", type=click.Choice(["once", "weekly", "monthly"]), default="once", show_default=True,
              help="Counted over the whole window, or each week or month of it.")  # fmt: skip
@click.option("--starts-at", required=True, help="The window's start (ISO 8601 with an offset).")
@click.option("--ends-at", required=True, help="Its end, not included.")
@click.option("--segment", default=None, help="Only members with this segment tag.")
@click.option("--tier", "tiers", multiple=True, help="Only members in this tier (repeat for several).")
@click.option("--reward-points", type=click.IntRange(0), default=0, help="Points for completing it (with --campaign).")
@click.option("--campaign", "campaign_id", type=int, default=None, help="The budgeted campaign that pays them.")
@click.option("--badge", default=None, help="A badge for completing it.")
@program_option
@with_api
def challenges_create(name: str, tiers: tuple[str, ...], api_url: str, key: str | None, **fields: Any) -> None:
    """Create a challenge for the brand's members (with its --key)."""
    body = {"name": name, **{k: v for k, v in fields.items() if v not in (None, 0) or k == "reward_points"}}
    if tiers:
        body["tiers"] = list(tiers)
    _call(api_url, key, "POST", "/v1/challenges", body)


@challenges.command("list")
@page_options
@with_api
def challenges_list(limit: int, cursor: str | None, api_url: str, key: str | None) -> None:
    """Challenges (a partner: its own)."""
    _list(api_url, key, "/v1/challenges", limit, cursor)


@challenges.command("progress")
@click.argument("member_id", type=int, required=False)
@with_api
def challenges_progress(member_id: int | None, api_url: str, key: str | None) -> None:
    """A member's progress and badges (without MEMBER_ID: the member signed in, its session as --key)."""
    _call(api_url, key, "GET", "/v1/me/challenges" if member_id is None else f"/v1/members/{member_id}/challenges")


@challenges.command("deactivate")
@click.argument("challenge_id", type=int)
@with_api
def challenges_deactivate(challenge_id: int, api_url: str, key: str | None) -> None:
    """No more completions."""
    _call(api_url, key, "POST", f"/v1/challenges/{challenge_id}/deactivate")


# ------------------------------------------------------------------------------ leaderboards
@click.group()
def leaderboards() -> None:
    """A brand's members ranked by points earned from it, per week or month, from the chain."""


def _prize(text: str) -> dict[str, int]:
    rank, _, points = text.partition("=")
    if not (rank.isdigit() and points.isdigit()):
        raise click.BadParameter(f"{text!r} is not RANK=POINTS, e.g. 1=500")
    return {"rank": int(rank), "points": int(points)}


@leaderboards.command("create")
@click.argument("name")
@click.option("--period", type=click.Choice(["weekly", "monthly"]), required=True, help="Weeks from Monday, months from the 1st (UTC).")  # fmt: skip
@click.option("--prize", "prizes", multiple=True, help="RANK=POINTS, e.g. --prize 1=500 --prize 2=200.")
@click.option("--campaign", "campaign_id", type=int, default=None, help="The budgeted campaign that pays the prizes.")
@click.option("--starts-at", default=None, help="The first period is the one this time falls in (default: now).")
@program_option
@with_api
def leaderboards_create(
    name: str, period: str, prizes: tuple[str, ...], campaign_id: int | None, starts_at: str | None,
    program_id: int | None, api_url: str, key: str | None,
) -> None:  # fmt: skip
    """Create a leaderboard of the brand's members (with its --key)."""
    body: dict[str, Any] = {"name": name, "period": period, "prizes": [_prize(p) for p in prizes]}
    body |= {k: v for k, v in (("campaign_id", campaign_id), ("starts_at", starts_at), ("program_id", program_id)) if v}
    _call(api_url, key, "POST", "/v1/leaderboards", body)


@leaderboards.command("list")
@page_options
@with_api
def leaderboards_list(limit: int, cursor: str | None, api_url: str, key: str | None) -> None:
    """Leaderboards (a partner: its own)."""
    _list(api_url, key, "/v1/leaderboards", limit, cursor)


@leaderboards.command("standings")
@click.argument("leaderboard_id", type=int)
@click.option("--at", default=None, help="The period this time falls in (default: now).")
@click.option("--top", "limit", type=click.IntRange(1, 1000), default=10, show_default=True, help="How many ranks.")
@click.option("--member", "member_id", type=int, default=None, help="Also this member's own rank.")
@click.option("--mine", is_flag=True, help="The signed-in member's rank (its session as --key).")
@with_api
def leaderboards_standings(
    leaderboard_id: int, at: str | None, limit: int, member_id: int | None, mine: bool, api_url: str, key: str | None
) -> None:
    """A period's ranking from the chain: the top ranks, and a member's own."""
    query = _query(at=at, limit=limit, member_id=None if mine else member_id)
    path = f"/v1/me/leaderboards/{leaderboard_id}" if mine else f"/v1/leaderboards/{leaderboard_id}/standings"
    _call(api_url, key, "GET", path + query)


@leaderboards.command("closes")
@click.argument("leaderboard_id", type=int)
@with_api
def leaderboards_closes(leaderboard_id: int, api_url: str, key: str | None) -> None:
    """The periods closed and the prizes each paid."""
    _call(api_url, key, "GET", f"/v1/leaderboards/{leaderboard_id}/closes")


@leaderboards.command("deactivate")
@click.argument("leaderboard_id", type=int)
@with_api
def leaderboards_deactivate(leaderboard_id: int, api_url: str, key: str | None) -> None:
    """No more periods close or pay."""
    _call(api_url, key, "POST", f"/v1/leaderboards/{leaderboard_id}/deactivate")


# ---------------------------------------------------------------------------------- metrics
TABLES = {  # --csv: a table of the report, by the key it is under
    "cohorts": lambda m: m["breakage"]["cohorts"],
    "retention": lambda m: m["retention"],
    "deferred-revenue": lambda m: (m["deferred_revenue"] or {}).get("periods", []),
    "expiring": lambda m: m["expiring"],
}


@click.command()
@program_option
@click.option("--partner", "partner_id", type=int, default=None, help="A brand's figures in the program.")
@click.option("--campaign", "campaign_id", type=int, default=None, help="A budgeted campaign's figures.")
@click.option("--since", default=None, help="Flows from this time (ISO 8601 with an offset), with --until.")
@click.option("--until", default=None, help="Flows until this time, not included.")
@click.option("--active-days", type=click.IntRange(1, 3_650), default=None, help="Active: did something in this many days (90).")  # fmt: skip
@click.option("--csv", "table", type=click.Choice(sorted(TABLES)), default=None, help="Print one table as CSV instead of the JSON.")  # fmt: skip
@click.option("--chart", type=click.Path(dir_okay=False, writable=True), default=None, help="Also write the cohorts chart (SVG) here.")  # fmt: skip
@with_api
def metrics(
    program_id: int | None, partner_id: int | None, campaign_id: int | None, since: str | None, until: str | None,
    active_days: int | None, table: str | None, chart: str | None, api_url: str, key: str | None,
) -> None:  # fmt: skip
    """A program's figures (a brand's with --partner; a partner's key gets its own): liability,
    flows, breakage by cohort, members, retention, repeat purchases and deferred revenue (GET
    /v1/metrics). Liability and breakage are those `loyalty audit verify` derives."""
    from loyalty.web.charts import cohorts_chart

    query = _query(program_id=program_id, partner_id=partner_id, campaign_id=campaign_id, since=since, until=until,
                   active_days=active_days)  # fmt: skip
    found = request(api_url, key, "GET", f"/v1/metrics{query}")
    if chart:
        with open(chart, "w") as f:
            f.write(cohorts_chart(found))
    if table is None:
        click.echo(json.dumps(found, indent=2))
        return
    rows = TABLES[table](found)
    out = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else ["none"], lineterminator="\n")
    out.writeheader()
    out.writerows(rows)


# -------------------------------------------------------------------------------- redeeming
@click.command()
@click.argument("member_id", type=int)
@click.argument("reward_id", type=int)
@click.option("--code", "redemption_code", default=None, help="The member's one-time redemption code.")
@with_api
def redeem(member_id: int, reward_id: int, redemption_code: str | None, api_url: str, key: str | None) -> None:
    """Redeem a reward for a custodial member (with the reward's partner's --key): reserved at
    once with the member's --code, else it awaits the member's approval."""
    body: dict[str, Any] = {"member_id": member_id, "reward_id": reward_id}
    if redemption_code:
        body["redemption_code"] = redemption_code
    _call(api_url, key, "POST", "/v1/redemptions", body)


@click.group()
def redemptions() -> None:
    """Redemptions: their status, lists."""


@redemptions.command("status")
@click.argument("redemption_id", type=int)
@with_api
def redemptions_status(redemption_id: int, api_url: str, key: str | None) -> None:
    """A redemption: awaiting_member, declined, reserved, posted (with its voucher) or voided."""
    _call(api_url, key, "GET", f"/v1/redemptions/{redemption_id}")


@redemptions.command("list")
@click.option("--member", "member_id", type=int, default=None)
@click.option(
    "--status", type=click.Choice(["awaiting_member", "declined", "reserved", "posted", "voided"]), default=None
)
@page_options
@with_api
def redemptions_list(
    member_id: int | None, status: str | None, limit: int, cursor: str | None, api_url: str, key: str | None
) -> None:
    """Redemptions, oldest first (a partner's --key lists its own)."""
    _list(api_url, key, "/v1/redemptions", limit, cursor, member_id=member_id, status=status)


@click.command()
@with_api
def whoami(api_url: str, key: str | None) -> None:
    """Whose the key (--key, or LOYALTY_API_KEY) is: its role, and its partner or member."""
    _call(api_url, key, "GET", "/v1/whoami")


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
    if hooks := h.get("webhooks"):
        disabled = hooks["disabled_endpoints"]
        lines.append(
            f"webhooks  {hooks['pending_deliveries']:,} deliveries pending"
            + (f", the oldest {hooks['oldest_pending_s']:,.0f} s old" if hooks["oldest_pending_s"] is not None else "")
            + (f"; endpoints disabled: {', '.join(map(str, disabled))}" if disabled else "")
        )
    click.echo("\n".join(lines))


# ---------------------------------------------------------------------------------- webhooks
EVENT_TYPES = click.Choice(list(webhook_types.EVENT_TYPES))


@click.group()
def webhooks() -> None:
    """Webhook endpoints (a partner's, or the admin's for every event), their delivery log."""


@webhooks.command("create")
@click.argument("url")
@click.option(
    "--event", "event_types", multiple=True, required=True, type=EVENT_TYPES, help="An event type (repeat it)."
)
@click.option("--description", default="", help="What the endpoint is for.")
@with_api
def webhooks_create(url: str, event_types: tuple[str, ...], description: str, api_url: str, key: str | None) -> None:
    """Register URL for these events; prints its `whsec_` signing secret, once."""
    body = {"url": url, "event_types": list(event_types), "description": description}
    _call(api_url, key, "POST", "/v1/webhooks", body)


@webhooks.command("list")
@page_options
@with_api
def webhooks_list(limit: int, cursor: str | None, api_url: str, key: str | None) -> None:
    """Endpoints (a partner sees its own)."""
    _list(api_url, key, "/v1/webhooks", limit, cursor)


@webhooks.command("show")
@click.argument("webhook_id", type=int)
@with_api
def webhooks_show(webhook_id: int, api_url: str, key: str | None) -> None:
    """One endpoint: its events, status and failures in a row."""
    _call(api_url, key, "GET", f"/v1/webhooks/{webhook_id}")


@webhooks.command("update")
@click.argument("webhook_id", type=int)
@click.option("--url", default=None, help="A new URL.")
@click.option(
    "--event", "event_types", multiple=True, type=EVENT_TYPES, help="The event types, all of them (repeat it)."
)
@with_api
def webhooks_update(
    webhook_id: int, url: str | None, event_types: tuple[str, ...], api_url: str, key: str | None
) -> None:
    """Change an endpoint's URL or event types."""
    body = {"url": url, "event_types": list(event_types) or None}
    _call(api_url, key, "PATCH", f"/v1/webhooks/{webhook_id}", {k: v for k, v in body.items() if v is not None})


@webhooks.command("rotate-secret")
@click.argument("webhook_id", type=int)
@with_api
def webhooks_rotate_secret(webhook_id: int, api_url: str, key: str | None) -> None:
    """A new signing secret (the old one also signs for 24 hours)."""
    _call(api_url, key, "POST", f"/v1/webhooks/{webhook_id}/secret-rotations")


@webhooks.command("enable")
@click.argument("webhook_id", type=int)
@with_api
def webhooks_enable(webhook_id: int, api_url: str, key: str | None) -> None:
    """Send to the endpoint again (what waited goes now, in order)."""
    _call(api_url, key, "POST", f"/v1/webhooks/{webhook_id}/enable")


@webhooks.command("disable")
@click.argument("webhook_id", type=int)
@with_api
def webhooks_disable(webhook_id: int, api_url: str, key: str | None) -> None:
    """Stop sending (events still queue for it)."""
    _call(api_url, key, "POST", f"/v1/webhooks/{webhook_id}/disable")


@webhooks.command("delete")
@click.argument("webhook_id", type=int)
@with_api
def webhooks_delete(webhook_id: int, api_url: str, key: str | None) -> None:
    """No more events for the endpoint (its log stays)."""
    request(api_url, key, "DELETE", f"/v1/webhooks/{webhook_id}")
    click.echo(f"webhook endpoint {webhook_id} deleted")


@webhooks.command("deliveries")
@click.argument("webhook_id", type=int)
@click.option("--status", type=click.Choice(["pending", "delivered"]), default=None, help="Only these.")
@page_options
@with_api
def webhooks_deliveries(
    webhook_id: int, status: str | None, limit: int, cursor: str | None, api_url: str, key: str | None
) -> None:
    """The endpoint's delivery log: each event, its status and every attempt."""
    _list(api_url, key, f"/v1/webhooks/{webhook_id}/deliveries", limit, cursor, status=status)


@webhooks.command("redeliver")
@click.argument("webhook_id", type=int)
@click.argument("delivery_id", type=int)
@with_api
def webhooks_redeliver(webhook_id: int, delivery_id: int, api_url: str, key: str | None) -> None:
    """Send a delivery again now, with the same webhook-id."""
    _call(api_url, key, "POST", f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
