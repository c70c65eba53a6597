"""The console's and the explorer's resource pages, declared: each lists an API collection as a
table (or shows its one document) with a CSV download and, where the API takes one, offers its
create form and row actions. A form's fields become the API's JSON body as typed (numbers as
integers, JSON fields parsed); the API validates it."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from loyalty.web.api import ApiProblem
from loyalty.web.charts import cohorts_chart, timeline_chart
from loyalty.web.session import Viewer
from loyalty.web.site import page


@dataclass(frozen=True)
class Input:
    """A form field: `kind` is text, number, json (a textarea holding JSON) or list (comma-separated)."""

    name: str
    label: str
    kind: str = "text"
    required: bool = True
    example: str = ""


@dataclass(frozen=True)
class Action:
    """A form on each row: `path` names the row's fields in braces (`/v1/rewards/{id}`)."""

    label: str
    method: str
    path: str
    inputs: tuple[Input, ...] = ()


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    path: str  # the API collection: GET lists it (a page, or one document), POST adds to it
    columns: tuple[str, ...]
    roles: tuple[str, ...] = ("admin", "partner")
    create: tuple[Input, ...] = ()
    actions: tuple[Action, ...] = ()
    about: str = ""
    own: bool = False  # a partner sees its own rows (`partner_id`)
    write: str = "POST"  # how the create form is sent (PUT: it replaces the document)
    rows_key: str = "data"  # where the answer holds its rows (dotted: `breakage.cohorts`)

    @property
    def paged(self) -> bool:
        """A list the API pages (`{data, next_cursor}`), not one document."""
        return bool(self.columns) and self.rows_key == "data"


# fmt: off
COHORT_COLUMNS: tuple[str, ...] = (
    "epoch", "starts_at", "expires_at", "earned", "spent", "expired", "outstanding", "closed", "expected_expired",
)
CONSOLE_SECTIONS = {
    s.name: s
    for s in (
        Section(
            "rewards",
            "Reward catalog",
            "/v1/rewards",
            ("id", "name", "cost_points", "stock", "active", "program_id"),
            own=True,
            create=(
                Input("name", "Name"),
                Input("cost_points", "Cost (points)", "number"),
                Input("stock", "Stock", "number"),
                Input("description", "Description", required=False),
            ),
            actions=(
                Action("Set stock", "PATCH", "/v1/rewards/{id}", (Input("stock", "Stock", "number"),)),
                Action("Deactivate", "PATCH", "/v1/rewards/{id}", (Input("active", "Active", "false"),)),
            ),
        ),
        Section(
            "purchases",
            "Purchases",
            "/v1/purchases",
            ("order_id", "member_id", "status", "total_points", "occurred_at", "pending_until"),
            about="A purchase earns through the partner's rules, tiers and campaigns.",
            create=(
                Input("member_id", "Member id", "number"),
                Input("order_id", "Order id"),
                Input("occurred_at", "Occurred at (ISO 8601)", example="2026-12-07T12:00:00Z"),
                Input("currency", "Currency", example="USD"),
                Input(
                    "lines",
                    "Lines (JSON)",
                    "json",
                    example='[{"sku": "latte", "quantity": 1, "unit_price_minor": 450}]',
                ),
            ),
        ),
        Section(
            "rules",
            "Earning rules",
            "/v1/rules",
            ("id", "version", "active", "definition"),
            create=(
                Input(
                    "body",
                    "Rule (JSON, as POST /v1/rules takes it)",
                    "json",
                    example='{"name": "Any", "calculator": {"strategy": "fixed", "points": 10}}',
                ),
            ),
        ),
        Section(
            "campaigns",
            "Campaigns",
            "/v1/campaigns",
            ("id", "name", "status", "starts_at", "ends_at", "budget"),
            create=(Input("body", "Campaign (JSON, as POST /v1/campaigns takes it)", "json"),),
            actions=(Action("Deactivate", "POST", "/v1/campaigns/{id}/deactivate"),),
        ),
        Section(
            "agreements",
            "Exchange agreements",
            "/v1/agreements",
            ("id", "status", "source_program_id", "target_program_id", "payer_id", "payee_id", "terms"),
            create=(Input("body", "Agreement (JSON, as POST /v1/agreements takes it)", "json"),),
            actions=(
                Action("Sign", "POST", "/v1/agreements/{id}/sign"),
                Action("Revoke", "POST", "/v1/agreements/{id}/revoke"),
            ),
        ),
        Section("tiers", "Tiers", "/v1/programs/1/tiers", (), write="PUT",
                about="Program 1's tier ladder: thresholds, benefits and multipliers (earned tiers; paid ones are rewards).",
                create=(Input("body", "Ladder (JSON, as PUT /v1/programs/1/tiers takes it)", "json"),)),
        Section(
            "exchanges",
            "Exchanges",
            "/v1/exchanges",
            ("id", "member_id", "agreement_id", "amount_in", "amount_out", "status", "tx_hash"),
        ),
        Section(
            "settlement", "Settlement", "/v1/settlement", (), about="Periods, what each partner owes, and payments."
        ),
        Section(
            "webhooks",
            "Webhooks",
            "/v1/webhooks",
            ("id", "url", "event_types", "status", "failures"),
            create=(
                Input("url", "URL"),
                Input("event_types", "Events (comma-separated)", "list", example="earn.confirmed"),
            ),
            actions=(
                Action("Deliveries", "GET", "/console/webhooks/{id}/deliveries"),
                Action("Disable", "POST", "/v1/webhooks/{id}/disable"),
                Action("Enable", "POST", "/v1/webhooks/{id}/enable"),
            ),
        ),
        Section(
            "metrics",
            "Metrics",
            "/v1/metrics",
            COHORT_COLUMNS,
            rows_key="breakage.cohorts",
            about="Liability and breakage from the chain; members and retention from the service.",
        ),
        Section(
            "programs",
            "Programs",
            "/v1/programs",
            ("id", "name", "symbol", "kind", "status", "token_address"),
            roles=("admin",),
            create=(Input("name", "Name"), Input("symbol", "Symbol", example="MILES")),
        ),
        Section(
            "auditors",
            "Auditors",
            "/v1/auditors",
            ("id", "name", "created_at"),
            roles=("admin",),
            create=(Input("name", "Name"),),
        ),
    )
}
EXPLORER_SECTIONS = {
    s.name: s
    for s in (
        Section("timeline", "Liability over time", "/v1/audit/timeline", ("block_number", "at", "outstanding_points", "expired_points"),
                roles=("admin", "auditor"), rows_key="points",
                about="Re-derived from the token's events: live points (the liability) and expired ones (the breakage), by date."),
        Section("metrics", "Liability and breakage", "/v1/metrics", COHORT_COLUMNS, roles=("admin", "auditor"),
                rows_key="breakage.cohorts",
                about="From the chain, by the auditor's own computation: points by the day they were earned."),
        Section("exchanges", "Exchanges", "/v1/exchanges", ("id", "member_id", "agreement_id", "source_program_id", "target_program_id", "amount_in", "amount_out", "status", "tx_hash"),
                roles=("admin", "auditor")),
        Section("agreements", "Agreements", "/v1/agreements", ("id", "status", "source_program_id", "target_program_id", "payer_id", "payee_id", "terms"),
                roles=("admin", "auditor")),
        Section("settlement", "Settlement", "/v1/settlement", (), roles=("admin", "auditor"),
                about="The exchange's settlement between partners: periods, debts and payments, all public on the chain."),
    )
}
# fmt: on
SECTIONS_OF = {"console": CONSOLE_SECTIONS, "explorer": EXPLORER_SECTIONS}
CHARTS = {"/v1/metrics": cohorts_chart, "/v1/audit/timeline": timeline_chart}  # drawn above the rows


def body_of(inputs: tuple[Input, ...], form: dict[str, str]) -> Any:
    """The API's JSON body from a form: numbers as integers, JSON parsed, lists split; an empty
    optional field left out. A single JSON field named `body` is the whole body."""
    body: dict[str, Any] = {}
    for field in inputs:
        raw = form.get(field.name, "").strip()
        if field.kind == "false":
            body[field.name] = False
            continue
        if not raw:
            if field.required:
                raise ApiProblem(422, "form_invalid", f"{field.label}: required")
            continue
        try:
            value: Any = (
                int(raw) if field.kind == "number"
                else json.loads(raw) if field.kind == "json"
                else [part.strip() for part in raw.split(",") if part.strip()] if field.kind == "list"
                else raw
            )  # fmt: skip
        except ValueError as error:
            raise ApiProblem(422, "form_invalid", f"{field.label}: {error}") from None
        if field.name == "body":
            return value
        body[field.name] = value
    return body


def listed(user: Viewer) -> list[Section]:
    """The sections of the user's surface its role may open."""
    return [s for s in SECTIONS_OF[user.surface.name].values() if user.role in s.roles]


def section_of(user: Viewer, name: str) -> Section:
    section = SECTIONS_OF[user.surface.name].get(name)
    if section is None or user.role not in section.roles:
        raise ApiProblem(404, "page_not_found", f"the {user.surface.name} has no page {name!r} for the {user.role}")
    return section


async def _found(user: Viewer, section: Section, cursor: str = "", limit: int = 50) -> Any:
    own = {"partner_id": user.partner_id} if section.own and user.role == "partner" else {}
    paged = {"limit": limit} if section.paged else {}
    try:
        return await user.api.get(section.path, **own, cursor=cursor or None, **paged)
    except ApiProblem as problem:
        if problem.status == 404 and not section.paged:  # a document not made yet (a tier ladder)
            return {}
        raise


async def show(request: Request, user: Viewer, name: str, cursor: str = "", notice: str | None = None) -> HTMLResponse:
    """A section's page: its rows (or its document), its create form and row actions."""
    section = section_of(user, name)
    found = await _found(user, section, cursor)
    chart = CHARTS.get(section.path)
    return page(
        request, "section.html", surface=user.surface, user=user, sections=listed(user), section=section,
        found=found, rows=_rows(found, section), notice=notice, chart=chart(found) if chart and found else None,
    )  # fmt: skip


def _rows(found: Any, section: Section) -> list[dict[str, Any]] | None:
    """The answer's rows (`rows_key`), or None for a document that has none."""
    for part in section.rows_key.split("."):
        if not isinstance(found, dict) or part not in found:
            return None
        found = found[part]
    return list(found)


async def download(user: Viewer, name: str) -> Response:
    """A section's figures as CSV: its rows (up to 1,000), or its one document."""
    section = section_of(user, name)
    found = await _found(user, section, limit=1_000)
    rows = _rows(found, section)
    columns, rows = (section.columns, rows) if rows is not None else (tuple(found), [found])
    return csv_download(f"{name}.csv", columns, rows)


def csv_download(filename: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> Response:
    """Rows as a CSV file to save (nested values as JSON)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()} for row in rows)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(out.getvalue(), media_type="text/csv", headers=headers)
