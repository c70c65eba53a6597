"""`audit verify` (from the chain alone) and `audit reconcile` (the database against the chain)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from loyalty.cli.wiring import runtime_or_exit
from loyalty.db.models import Program
from loyalty.paths import VAR
from loyalty.settings import Settings


@click.group()
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
@click.option(
    "--exchange",
    "exchange",
    envvar="EXCHANGE_ADDRESS",
    default=None,
    help="Also check this PointsExchange: agreements, exchanges, periods, payments (env EXCHANGE_ADDRESS).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=VAR / "audit", show_default=True,
              help="Folder for report.json, report.html, members.csv, partners.csv (and exchange.json).")  # fmt: skip
def audit_verify(
    rpc_url: str, token: str, from_block: int, to_block: int | None, exchange: str | None, out: Path
) -> None:
    """Re-derive balances, liabilities and expiries from the token's events alone and check them
    against the contract; with --exchange, every exchange and settlement too. Needs no
    database. Exit status 1 if anything disagrees."""
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
    clean = result.clean
    if exchange:
        clean = _audit_exchange(rpc_url, exchange, from_block, result.block_number, out) and clean
    raise SystemExit(0 if clean else 1)


def _audit_exchange(rpc_url: str, exchange: str, from_block: int, block: int, out: Path) -> bool:
    from loyalty.audit.exchange import exchange_report, verify_exchange
    from loyalty.audit.rpc import Rpc

    rpc = Rpc(rpc_url)
    try:
        audit = verify_exchange(rpc, exchange, from_block, block)
    finally:
        rpc.close()
    report = exchange_report(audit)
    (out / "exchange.json").write_text(json.dumps(report, indent=2) + "\n")
    click.echo(f"\nexchange {audit.exchange}:")
    for check in report["checks"]:
        click.echo(
            f"{check['status']:<5} {check['name']:<18} {check['checked']:>10,} checked  {check['failed']:>6,} failed"
        )
    click.echo(f"{len(report['discrepancies']):,} discrepancies; report in {out / 'exchange.json'}")
    return audit.clean


@audit.command("reconcile")
@click.option("--rpc", "rpc_url", envvar="RPC_URL", default=None, help="JSON-RPC URL of the chain (env RPC_URL).")
@from_block_option
@click.option("--program", "program_id", type=int, default=None, help="The program whose token (default: the first).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=VAR / "audit", show_default=True,
              help="Folder for reconcile.json.")  # fmt: skip
def audit_reconcile(rpc_url: str | None, from_block: int, program_id: int | None, out: Path) -> None:
    """Compare the database (DATABASE_URL) with the chain (--rpc, and the token of --program,
    by default the one the database is bound to): earns, mints, redemptions, burns, exchanges
    and members' net points. Exit status 1 if anything disagrees."""
    from dataclasses import asdict

    from loyalty.audit.reconcile import reconcile

    settings = Settings.from_env()
    runtime = runtime_or_exit(settings.model_copy(update={"rpc_url": rpc_url}) if rpc_url else settings)
    token: str = runtime.token.address
    if program_id is not None:
        with runtime.sessions() as session:
            found = session.get(Program, program_id)
        if found is None or found.token_address is None:
            runtime.close()
            raise click.ClickException(f"no program {program_id} with a token")
        token = found.token_address
    result = _run_audit(runtime.settings.rpc_url, token, from_block, None)
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


def _unix(value: str, name: str) -> int:
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=name) from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no offset (say Z for UTC)", param_hint=name)
    return int(moment.timestamp())


@audit.command("donations")
@click.option("--rpc", "rpc_url", envvar="RPC_URL", required=True, help="JSON-RPC URL of the chain (env RPC_URL).")
@click.option("--token", envvar="TOKEN_ADDRESS", required=True, help="The program's token (env TOKEN_ADDRESS).")
@click.option("--charity", required=True, help="The charity's issuer address in that program.")
@click.option("--since", required=True, help="From this time (ISO 8601 with an offset).")
@click.option("--until", required=True, help="Until this time, not included.")
@click.option("--rate", default=None, help="Price each donation at CASH/POINTS (e.g. 500/1000), rounded down.")
@from_block_option
def audit_donations(
    rpc_url: str, token: str, charity: str, since: str, until: str, rate: str | None, from_block: int
) -> None:
    """A charity's donations from the chain alone: every redemption at its address in the
    window (count, points, transactions) and, with --rate, their worth (the figures of GET
    /v1/partners/{id}/donation-statement)."""
    from dataclasses import asdict

    from loyalty.audit.rpc import Rpc
    from loyalty.audit.statements import donated
    from loyalty.cli.client import parse_rate

    priced = None if rate is None else parse_rate(rate)
    rpc = Rpc(rpc_url)
    try:
        found = donated(
            rpc, token, charity, since=_unix(since, "--since"), until=_unix(until, "--until"), from_block=from_block,
            rate=priced,
        )  # fmt: skip
    finally:
        rpc.close()
    click.echo(json.dumps(asdict(found), indent=2))


@audit.command("leaderboard")
@click.option("--rpc", "rpc_url", envvar="RPC_URL", required=True, help="JSON-RPC URL of the chain (env RPC_URL).")
@click.option("--token", envvar="TOKEN_ADDRESS", required=True, help="The program's token (env TOKEN_ADDRESS).")
@click.option("--since", required=True, help="The period's start (ISO 8601 with an offset).")
@click.option("--until", required=True, help="Its end, not included.")
@click.option("--issuer", "issuers", multiple=True, help="Count earns from this issuer only (repeat; default: all).")
@click.option("--top", type=click.IntRange(1), default=10, show_default=True, help="How many ranks to print.")
@from_block_option
def audit_leaderboard(
    rpc_url: str, token: str, since: str, until: str, issuers: tuple[str, ...], top: int, from_block: int
) -> None:
    """A period's ranking from the chain alone, by the rule the service ranks by: points earned
    in the window, then who reached its total first, then the lower address (the figures of GET
    /v1/leaderboards/{id}/standings)."""
    from dataclasses import asdict

    from loyalty.audit.leaderboard import standings
    from loyalty.audit.rpc import Rpc

    rpc = Rpc(rpc_url)
    try:
        found = standings(
            rpc, token, since=_unix(since, "--since"), until=_unix(until, "--until"), issuers=issuers or None,
            from_block=from_block,
        )  # fmt: skip
    finally:
        rpc.close()
    click.echo(json.dumps({"ranked": len(found), "top": [asdict(s) for s in found[:top]]}, indent=2))


@audit.command("statement")
@click.option("--rpc", "rpc_url", envvar="RPC_URL", required=True, help="JSON-RPC URL of the chain (env RPC_URL).")
@click.option("--token", envvar="TOKEN_ADDRESS", required=True, help="The coalition's token (env TOKEN_ADDRESS).")
@click.option("--since", required=True, help="From this time (ISO 8601 with an offset).")
@click.option("--until", required=True, help="Until this time, not included.")
@click.option(
    "--issue-fee", type=click.IntRange(0), required=True, help="Fee per point issued (settlement-token units)."
)
@click.option(
    "--redemption-price", type=click.IntRange(0), required=True, help="Price per point redeemed at a partner."
)
@click.option("--exclude", multiple=True, help="An issuer to leave out (the exchange: its own periods settle it).")
@from_block_option
def audit_statement(
    rpc_url: str, token: str, since: str, until: str, issue_fee: int, redemption_price: int, exclude: tuple[str, ...],
    from_block: int,
) -> None:  # fmt: skip
    """A coalition's statement from the chain alone: per issuer, points issued and redeemed in
    the window, what it owes and is owed at the two prices, and the payments that settle it (the
    same figures as GET /v1/programs/{id}/statements)."""
    from dataclasses import asdict

    from loyalty.audit.rpc import Rpc
    from loyalty.audit.statements import statement

    rpc = Rpc(rpc_url)
    try:
        found = statement(
            rpc, token, since=_unix(since, "--since"), until=_unix(until, "--until"), issue_fee=issue_fee,
            redemption_price=redemption_price, from_block=from_block, excluded=exclude,
        )  # fmt: skip
    finally:
        rpc.close()
    click.echo(json.dumps(asdict(found), indent=2))
