"""The audit's files: report.json (figures, checks, discrepancies), members.csv, partners.csv and
report.html (the same, for a person, with a chart of outstanding liability and expired points)."""

from __future__ import annotations

import csv
import html
import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loyalty.audit import metrics
from loyalty.audit.verify import Audit


def summary(audit: Audit) -> dict[str, Any]:
    """report.json's content."""
    p = audit.params
    found = metrics.figures(audit.ledger, audit.timestamp)
    return {
        "token": p.token,
        "chain_id": p.chain_id,
        "block_number": audit.block_number,
        "block_time": _iso(audit.timestamp),
        "parameters": {
            "name": p.name,
            "start_time": p.start_time,
            "epoch_length_s": p.epoch_length,
            "validity_epochs": p.validity_epochs,
            "current_epoch": p.epoch_at(audit.timestamp),
        },
        "figures": {
            "members": len(audit.members),
            "issuers": len(audit.issuers),
            "earn_events": audit.ledger.earn_events,
            "redeem_events": audit.ledger.redeem_events,
            "earned_points": sum(i.earned for i in audit.issuers),
            "redeemed_points": sum(i.redeemed_at for i in audit.issuers),
            "expired_points": audit.expired,
            "outstanding_points": audit.total_supply,
            "total_supply_onchain": audit.onchain_total_supply,
        },
        "breakage": {
            "realized_bp": found.realized_breakage_bp,
            "expected_bp": found.expected_breakage_bp,
            "method": found.method,
            "cohorts": [asdict(c) for c in found.cohorts],
        },
        "partners": [{**asdict(i), "budget_onchain": audit.onchain_budgets[i.address]} for i in audit.issuers],
        "settlement": [
            {"points_of": owner, "redeemed_at": at, "points": points}
            for (owner, at), points in sorted(audit.ledger.settlement.items())
            if owner != at
        ],
        "checks": [
            {
                "name": c.name,
                "description": c.description,
                "checked": c.checked,
                "failed": c.failed,
                "status": "pass" if c.passed else "fail",
            }
            for c in audit.checks
        ],
        "discrepancies": [asdict(d) for d in audit.discrepancies],
        "timeline": [
            {"block_number": b, "time": _iso(t), "outstanding_points": o, "expired_points": e}
            for b, t, o, e in audit.timeline
        ],
        "clean": audit.clean,
    }


def write(audit: Audit, out: Path) -> dict[str, Any]:
    """Write the four files into `out`; returns report.json's content."""
    out.mkdir(parents=True, exist_ok=True)
    report = summary(audit)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    with (out / "members.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["address", "earned", "received", "sent", "redeemed", "expired", "balance", "balance_onchain", "ok"]
        )
        for m in audit.members:
            onchain = audit.onchain_balances[m.address]
            writer.writerow(
                [
                    m.address,
                    m.earned,
                    m.received,
                    m.sent,
                    m.redeemed,
                    m.expired,
                    m.balance,
                    onchain,
                    m.balance == onchain,
                ]
            )
    with (out / "partners.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "issuer",
                "earned",
                "redeemed_at",
                "expired",
                "outstanding",
                "budget_remaining",
                "budget_onchain",
                "has_role",
            ]
        )
        for i in audit.issuers:
            writer.writerow([i.address, i.earned, i.redeemed_at, i.expired, i.outstanding, i.budget_remaining,
                             audit.onchain_budgets[i.address], i.has_role])  # fmt: skip
    (out / "report.html").write_text(_html(report))
    return report


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _chart(timeline: list[dict[str, Any]], width: int = 860, height: int = 300) -> str:
    """An inline SVG line chart: outstanding liability and expired points by block."""
    if not timeline:
        return "<p>No events.</p>"
    pad = 56
    blocks: list[int] = [row["block_number"] for row in timeline]
    top: int = max(max(r["outstanding_points"], r["expired_points"]) for r in timeline) or 1
    low, span = blocks[0], max(1, blocks[-1] - blocks[0])

    def x(block: int) -> float:
        return pad + (block - low) / span * (width - 2 * pad)

    def y(points: int) -> float:
        return float(height - pad - points / top * (height - 2 * pad))

    lines = []
    for key, colour in (("outstanding_points", "#1f6feb"), ("expired_points", "#d1242f")):
        path = " ".join(f"{x(r['block_number']):.1f},{y(r[key]):.1f}" for r in timeline)
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
    axes = (
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>'
        f'<text x="{pad}" y="{height - pad + 18}" font-size="11">block {blocks[0]}</text>'
        f'<text x="{width - pad}" y="{height - pad + 18}" font-size="11" text-anchor="end">block {blocks[-1]}</text>'
        f'<text x="{pad - 6}" y="{pad + 4}" font-size="11" text-anchor="end">{top:,}</text>'
        f'<text x="{pad - 6}" y="{height - pad}" font-size="11" text-anchor="end">0</text>'
        f'<text x="{width - pad}" y="{pad - 24}" font-size="12" text-anchor="end" fill="#1f6feb">outstanding liability</text>'
        f'<text x="{width - pad}" y="{pad - 8}" font-size="12" text-anchor="end" fill="#d1242f">expired (breakage)</text>'
    )
    return f'<svg width="{width}" height="{height}" role="img" aria-label="liability over time">{axes}{"".join(lines)}</svg>'


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    return (
        f"{value:,}"
        if isinstance(value, int) and not isinstance(value, bool)
        else str(value if value is not None else "")
    )


def _html(report: dict[str, Any]) -> str:
    verdict = "clean: every check passed" if report["clean"] else f"{len(report['discrepancies'])} discrepancies found"
    figures = [{"figure": k.replace("_", " "), "value": v} for k, v in report["figures"].items()]
    style = (
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}"
        "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}"
        "th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.fail{color:#d1242f}.pass{color:#1a7f37}"
    )
    checks = "".join(
        f'<tr><td>{html.escape(c["name"])}</td><td class="{c["status"]}">{c["status"]}</td>'
        f"<td>{c['checked']:,}</td><td>{c['failed']:,}</td><td>{html.escape(c['description'])}</td></tr>"
        for c in report["checks"]
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Loyalty audit {html.escape(report["token"])}</title>
<style>{style}</style></head><body>
<h1>Loyalty points audit</h1>
<p>Token {html.escape(report["token"])} on chain {report["chain_id"]}, as of block {report["block_number"]:,}
({report["block_time"]}). Derived from the chain's events alone. <strong>{verdict}</strong>.</p>
<h2>Outstanding liability and expired points</h2>
{_chart(report["timeline"])}
<h2>Figures</h2>
{_table(figures, ["figure", "value"])}
<h2>Checks</h2>
<table><tr><th>check</th><th>status</th><th>checked</th><th>failed</th><th>what it means</th></tr>{checks}</table>
<h2>Partners (issuers)</h2>
{_table(report["partners"], ["address", "earned", "redeemed_at", "expired", "outstanding", "budget_remaining", "budget_onchain"])}
<h2>Settlement between partners</h2>
{_table(report["settlement"], ["points_of", "redeemed_at", "points"]) if report["settlement"] else "<p>No points redeemed at another partner.</p>"}
<h2>Discrepancies</h2>
{_table(report["discrepancies"][:1000], ["check", "detail", "tx_hash", "block_number"]) if report["discrepancies"] else "<p>None.</p>"}
</body></html>
"""
