"""Every route, as every kind of caller, generated from /openapi.json (a new route cannot skip it).

Each operation declares who may call it (`x-roles`, from its `require` dependency). The test
calls every operation as: no key, a wrong key, the admin, partner A, partner B, an auditor,
member A and member B, on partner A's resources (member A, A's reward, earn and redemption):
- no key or a wrong key: 401 (except operations open to anyone);
- a role the operation does not name: 403;
- partner B and member B, on A's resources: 403 or 404 (as if absent), never a success;
- partner A, member A, the admin and auditors where their role is named: neither 401, 403,
  404 nor 5xx.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support.backend import ADMIN_KEY, confirm_all, make_member, make_partner, post, second_program, sign_in

from loyalty.db.models import Settlement, WebhookDelivery

RECENTLY = (datetime.now(UTC) - timedelta(hours=1)).isoformat()  # activities are reported within 90 days
CALLERS = ("none", "wrong", "admin", "partner_a", "partner_b", "auditor", "member_a", "member_b")
ROLE_OF = {"admin": "admin", "partner_a": "partner", "partner_b": "partner", "auditor": "auditor"}
ROLE_OF |= {"member_a": "member", "member_b": "member"}
OUTSIDERS = {"partner_b", "member_b"}  # on partner A's and member A's resources
SHARED = {  # program-wide
    ("get", "/v1/rewards/{reward_id}"),
    ("get", "/v1/programs/{program_id}"),
    ("get", "/v1/programs/{program_id}/tiers"),
    ("get", "/v1/programs/{program_id}/statements"),  # a partner sees its own lines in it
    ("post", "/v1/exchanges/quote"),  # a registered agreement's terms are public on the chain
    ("get", "/v1/settlement/periods/{period}"),  # debts and payments are public on the chain
    ("post", "/v1/settlement/periods/{period}/close"),  # anyone may close an ended period
    ("get", "/v1/leaderboards/{leaderboard_id}"),  # a leaderboard's terms are public, as the catalog is
    ("get", "/v1/challenges/{challenge_id}"),  # and a challenge's
}


@pytest.fixture
def world(client: Any, writer: Any, rpc_url: str, tmp_path: Path) -> dict[str, Any]:
    a, b = make_partner(client, "A"), make_partner(client, "B")
    member_a, member_b = make_member(client, a["api_key"]), make_member(client, b["api_key"])
    reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 1, "stock": 100}, a["api_key"]).json()
    earn = post(client, "/v1/earn", {"member_id": member_a["id"], "amount_points": 5}, a["api_key"]).json()
    redemption = post(client, "/v1/redemptions", {"member_id": member_a["id"], "reward_id": reward["id"]}, a["api_key"])
    assert redemption.json()["status"] == "awaiting_member", redemption.text
    auditor = post(client, "/v1/auditors", {"name": "Audit"}, ADMIN_KEY).json()
    rule = post(client, "/v1/rules", {"name": "Any", "calculator": {"strategy": "fixed", "points": 1}}, a["api_key"])
    order = {"member_id": member_a["id"], "order_id": "O-1", "occurred_at": RECENTLY, "currency": "USD"}
    purchase = post(
        client,
        "/v1/purchases",
        {**order, "lines": [{"sku": "x", "quantity": 1, "unit_price_minor": 100}]},
        a["api_key"],
    )
    assert purchase.status_code == 202, purchase.text
    ladder = {"tiers": [{"name": "bronze", "threshold": 0}, {"name": "gold", "threshold": 1_000}]}
    assert (
        client.put("/v1/programs/1/tiers", json=ladder, headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code
        == 200
    )
    window = {"starts_at": "2026-01-01T00:00:00Z", "ends_at": "2036-01-01T00:00:00Z"}
    campaign = post(
        client,
        "/v1/campaigns",
        {"name": "C", **window, "effect": {"kind": "bonus", "points": 1}, "budget_points": 10},
        a["api_key"],
    )
    assert campaign.status_code == 201, campaign.text
    event = post(
        client,
        "/v1/events",
        {"member_id": member_a["id"], "event_id": "E-1", "type": "review", "occurred_at": order["occurred_at"]},
        a["api_key"],
    )
    assert event.status_code == 201, event.text
    paid = {"tier": "gold", "period_days": 30, "currency": "USD", "price_minor": 1, "payment_ref": "pay-0"}
    subscription = post(client, f"/v1/members/{member_a['id']}/tier-subscriptions", paid, a["api_key"])
    assert subscription.status_code == 201, subscription.text
    c = make_partner(client, "C")  # A's counterparty: B is a party to none of A's agreements
    target = second_program(client, rpc_url, tmp_path)
    deal = {"source_program_id": 1, "target_program_id": target, "payer_id": a["id"], "payee_id": c["id"],
            "rate_numerator": 1, "rate_denominator": 3, "valid_until": "2036-01-01T00:00:00Z"}  # fmt: skip
    agreement = post(client, "/v1/agreements", deal, a["api_key"])
    assert agreement.status_code == 201, agreement.text
    post(client, f"/v1/agreements/{agreement.json()['id']}/sign", None, c["api_key"])
    back = {**deal, "source_program_id": target, "target_program_id": 1, "payer_id": c["id"], "payee_id": a["id"]}
    assert post(client, "/v1/agreements", back, a["api_key"]).status_code == 201  # A is payer of one, payee of another
    hook = post(
        client, "/v1/webhooks", {"url": "http://127.0.0.1:9/hooks", "event_types": ["earn.confirmed"]}, a["api_key"]
    )
    assert hook.status_code == 201, hook.text
    confirm_all(writer)  # A's earn confirmed: a delivery to A's endpoint
    exchange = post(
        client,
        "/v1/exchanges",
        {"agreement_id": agreement.json()["id"], "member_id": member_a["id"], "amount_in": 300},
        a["api_key"],
    )
    assert exchange.json()["status"] == "awaiting_member", exchange.text
    rate = {"cash_minor": 5, "points": 10, "currency": "USD"}
    charity = post(client, "/v1/partners", {"name": "Charity", "kind": "charity", "donation_rate": rate}, ADMIN_KEY)
    donation = post(
        client, "/v1/donations", {"member_id": member_a["id"], "charity_id": charity.json()["id"], "amount_points": 1},
        a["api_key"],
    )  # fmt: skip
    assert donation.json()["status"] == "awaiting_member", donation.text
    board = post(client, "/v1/leaderboards", {"name": "Top", "period": "weekly"}, a["api_key"])
    assert board.status_code == 201, board.text
    challenge = post(
        client, "/v1/challenges",
        {"name": "Visits", "metric": "purchases", "target": 3, "badge": "regular", "starts_at": "2026-01-01T00:00:00Z",
         "ends_at": "2036-01-01T00:00:00Z"},
        a["api_key"],
    )  # fmt: skip
    assert challenge.status_code == 201, challenge.text
    with client.app.state.runtime.sessions() as session:  # a step of A's (a period cannot end here: it lasts a week)
        step = Settlement(
            exchange_address="0x" + "0" * 40, period=0, payment_index=0, action="pay", partner_id=a["id"], amount="1"
        )
        session.add(step)
        session.commit()
        step_id = step.id
        delivery_id = session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == hook.json()["id"]))
        assert delivery_id is not None
    return {
        "ids": {
            "member_id": member_a["id"],
            "reward_id": reward["id"],
            "earn_id": earn["id"],
            "redemption_id": redemption.json()["id"],
            "partner_id": a["id"],
            "auditor_id": auditor["id"],
            "rule_id": rule.json()["id"],
            "order_id": "O-1",
            "program_id": 1,
            "subscription_id": subscription.json()["id"],
            "campaign_id": campaign.json()["id"],
            "event_id": "E-1",
            "agreement_id": agreement.json()["id"],
            "source_program_id": 1,
            "target_program_id": target,
            "payer_id": a["id"],
            "payee_id": c["id"],
            "exchange_id": exchange.json()["id"],
            "period": 0,
            "index": 0,
            "step_id": step_id,
            "webhook_id": hook.json()["id"],
            "delivery_id": delivery_id,
            "charity_id": charity.json()["id"],
            "donation_id": donation.json()["id"],
            "leaderboard_id": board.json()["id"],
            "challenge_id": challenge.json()["id"],
        },
        "keys": {
            "none": None,
            "wrong": "ptn_" + "0" * 48,
            "admin": ADMIN_KEY,
            "partner_a": a["api_key"],
            "partner_b": b["api_key"],
            "auditor": auditor["api_key"],
            "member_a": sign_in(client, member_a),
            "member_b": sign_in(client, member_b),
        },
    }


def _sample(name: str, schema: dict[str, Any], ids: dict[str, int]) -> Any:
    """A valid value for a required body field, by name; a field not known here fails the test
    (say what a new field should be sent as)."""
    if name in ids:
        return ids[name]
    samples: dict[str, Any] = {
        "name": f"n-{uuid.uuid4().hex[:8]}",
        "external_id": f"x-{uuid.uuid4().hex[:8]}",
        "issue_budget_points": 10,
        "amount_points": 1,
        "max_points": 10,
        "cost_points": 1,
        "stock": 1,
        "passphrase": "a passphrase long enough",
        "token": "lnk_unknown",
        "message": "not a sign-in message",
        "signature": "0x" + "11" * 65,
        "address": "0x" + "22" * 20,
        "items": [{"member_id": ids["member_id"], "amount_points": 1}],
        "calculator": {"strategy": "fixed", "points": 1},
        "occurred_at": RECENTLY,
        "order_id": f"o-{uuid.uuid4().hex[:8]}",
        "currency": "USD",
        "lines": [{"sku": "x", "quantity": 1, "unit_price_minor": 100}],
        "refund_id": f"r-{uuid.uuid4().hex[:8]}",
        "tiers": [{"name": "bronze", "threshold": 0}, {"name": "gold", "threshold": 1_000}],
        "tier": "gold",
        "period_days": 30,
        "price_minor": 1,
        "payment_ref": f"pay-{uuid.uuid4().hex[:8]}",
        "type": "review",
        "starts_at": "2026-01-01T00:00:00Z",
        "ends_at": "2036-01-01T00:00:00Z",
        "effect": {"kind": "bonus", "points": 1},
        "budget_points": 10,
        "tags": ["vip"],
        "rate_numerator": 1,
        "rate_denominator": 3,
        "amount_in": 300,
        "points": 10,
        "exchanges": [{"agreement_id": ids["agreement_id"], "member_id": ids["member_id"], "amount_in": 300}],
        "valid_until": "2036-01-01T00:00:00Z",
        "url": "http://127.0.0.1:9/hooks",
        "event_types": ["earn.confirmed"],
        "cash_minor": 5,
        "period": "weekly",
        "metric": "purchases",
        "target": 1,
    }
    assert name in samples, f"no sample for the required body field {name!r} ({schema}): add one here"
    return samples[name]


def _body(spec: dict[str, Any], operation: dict[str, Any], ids: dict[str, int]) -> Any:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    schema = content["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return {name: _sample(name, schema["properties"][name], ids) for name in schema.get("required", [])}


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation; those that take a caller's credential or a resource away last (rotating a
    key, deleting, deactivating partner A's things, then partner A, then signing out)."""
    found = [(method, path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]

    def last(item: tuple[str, str, dict[str, Any]]) -> tuple[int, str, str]:
        method, path, _ = item
        rank = (
            5 if (method, path) == ("delete", "/v1/me/session")
            else 4 if path == "/v1/partners/{partner_id}/deactivate"
            else 3 if path.endswith("/deactivate")
            else 2 if method == "delete"
            else 1 if "key-rotations" in path
            else 0
        )  # fmt: skip
        return rank, path, method

    return sorted(found, key=last)


ROTATED = {"/v1/partners/{partner_id}/key-rotations": "partner_a", "/v1/auditors/{auditor_id}/key-rotations": "auditor"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_everyRoute_answersEachCallerAsItsRolesSay(client, world):
    spec = client.get("/openapi.json").json()
    ids, keys = world["ids"], world["keys"]
    checked, wrong = 0, []
    for method, path, operation in _operations(spec):
        assert "x-roles" in operation, f"{method.upper()} {path} declares no roles"
        roles = operation["x-roles"]
        url = path.format(**ids)
        body = _body(spec, operation, ids)
        scoped = "{" in path or any(f'"{k}"' in json.dumps(body) for k in ("member_id", "payer_id"))  # on A's resources
        for caller in CALLERS:
            headers = {"Idempotency-Key": uuid.uuid4().hex}
            if keys[caller] is not None:
                headers["Authorization"] = f"Bearer {keys[caller]}"
            response = client.request(method, url, json=body, headers=headers)
            status = response.status_code
            checked += 1
            if "anyone" in roles:
                expected_ok = status < 500
            elif caller in ("none", "wrong"):
                expected_ok = status == 401
            elif ROLE_OF[caller] not in roles:
                expected_ok = status == 403
            elif caller in OUTSIDERS and scoped and (method, path) not in SHARED:
                expected_ok = status in (403, 404)
            else:
                expected_ok = status not in (401, 403, 404) and status < 500
            if not expected_ok:
                wrong.append(f"{method.upper()} {path} as {caller}: {status} {response.text[:160]}")
            if path in ROTATED and status == 201:  # the holder's key changed: call on with the new one
                keys[ROTATED[path]] = response.json()["api_key"]
    assert not wrong, "\n".join(wrong)
    assert checked == len(_operations(spec)) * len(CALLERS) >= 8 * 25
