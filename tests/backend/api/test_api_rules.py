"""Earning rules through the API: versioned JSON definitions, each partner's own, and the
simulator that prices a purchase without writing anything."""

from support.backend import ADMIN_KEY, auth, make_partner, post

PER_DOLLAR = {"name": "1 point per dollar net", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}}
MONDAY, TUESDAY = "2026-11-23T09:30:00-05:00", "2026-11-24T09:30:00-05:00"
BASKET = [
    {"sku": "latte", "category": "drinks", "quantity": 2, "unit_price_minor": 450},
    {"sku": "croissant", "category": "pastries", "quantity": 1, "unit_price_minor": 325, "discount_minor": 25},
    {"sku": "delivery", "quantity": 1, "unit_price_minor": 500, "kind": "shipping"},
]


def _pastries(base_rule_id: int) -> dict:
    return {
        "name": "2x pastries on Mondays",
        "conditions": {"categories": ["pastries"], "days_of_week": [1]},
        "calculator": {"strategy": "multiplier", "rule_id": base_rule_id, "numerator": 2, "denominator": 1},
    }


def _simulate(client, key, occurred_at=MONDAY, **extra):
    body = {"occurred_at": occurred_at, "currency": "USD", "lines": BASKET, **extra}
    response = client.post("/v1/rules/simulate", json=body, headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


def test_rules_priceAPurchase_perDollarNetAndDoublePastriesOnMondays(client):
    key = make_partner(client)["api_key"]
    base = post(client, "/v1/rules", PER_DOLLAR, key)
    pastries = post(client, "/v1/rules", _pastries(base.json()["id"]), key)
    assert (base.status_code, pastries.status_code) == (201, 201), (base.text, pastries.text)

    monday, tuesday = _simulate(client, key), _simulate(client, key, TUESDAY)

    assert [(a["rule_id"], a["points"]) for a in monday["awards"]] == [
        (base.json()["id"], 12),
        (pastries.json()["id"], 3),
    ]
    assert monday["total_points"] == 15 and tuesday["total_points"] == 12
    assert monday["awards"][0]["reason"] == "1 point per dollar net" and monday["awards"][0]["rule_version"] == 1


def test_rules_areVersioned_andDeactivated(client):
    key = make_partner(client)["api_key"]
    rule = post(client, "/v1/rules", PER_DOLLAR, key).json()
    double = {**PER_DOLLAR, "calculator": {"strategy": "per_spend", "points": 2, "per_minor": 100}}

    changed = client.put(f"/v1/rules/{rule['id']}", json=double, headers=auth(key))
    again = client.put(f"/v1/rules/{rule['id']}", json=double, headers=auth(key))
    versions = client.get(f"/v1/rules/{rule['id']}/versions", headers=auth(key)).json()
    priced = _simulate(client, key)
    off = post(client, f"/v1/rules/{rule['id']}/deactivate", None, key)

    assert changed.json()["version"] == 2 and again.json()["version"] == 2
    assert [v["version"] for v in versions] == [1, 2] and versions[0]["definition"]["calculator"]["points"] == 1
    assert priced["total_points"] == 24 and priced["awards"][0]["rule_version"] == 2
    assert off.status_code == 200 and off.json()["active"] is False
    assert _simulate(client, key)["total_points"] == 0


def test_rules_areEachPartnersOwn(client):
    mine, theirs = make_partner(client, "Mine")["api_key"], make_partner(client, "Theirs")["api_key"]
    rule = post(client, "/v1/rules", PER_DOLLAR, mine).json()

    assert client.get(f"/v1/rules/{rule['id']}", headers=auth(theirs)).status_code == 404
    assert client.put(f"/v1/rules/{rule['id']}", json=PER_DOLLAR, headers=auth(theirs)).status_code == 404
    assert client.get("/v1/rules", headers=auth(theirs)).json()["data"] == []
    assert [r["id"] for r in client.get("/v1/rules", headers=auth(ADMIN_KEY)).json()["data"]] == [rule["id"]]
    borrowed = post(client, "/v1/rules", _pastries(rule["id"]), theirs)
    assert (borrowed.status_code, borrowed.json()["code"]) == (422, "invalid_rule")
    assert _simulate(client, theirs)["total_points"] == 0


def test_rules_refuseWhatCannotWork(client):
    key = make_partner(client)["api_key"]
    answers = [
        post(
            client,
            "/v1/rules",
            {**PER_DOLLAR, "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 0}},
            key,
        ),
        post(client, "/v1/rules", {**PER_DOLLAR, "calculator": {"strategy": "lottery"}}, key),
        post(client, "/v1/rules", {**PER_DOLLAR, "conditions": {"days_of_week": [8]}}, key),
        post(client, "/v1/rules", {**PER_DOLLAR, "trigger": "event"}, key),
        post(
            client,
            "/v1/rules",
            {**PER_DOLLAR, "conditions": {"starts_at": "2026-12-01T00:00:00Z", "ends_at": "2026-11-01T00:00:00Z"}},
            key,
        ),
        post(
            client,
            "/v1/rules",
            {**PER_DOLLAR, "calculator": {"strategy": "per_spend", "points": 0.5, "per_minor": 100}},
            key,
        ),
    ]
    assert [(r.status_code, r.json()["code"]) for r in answers] == [
        (422, "validation_error"), (422, "validation_error"), (422, "validation_error"), (422, "invalid_rule"),
        (422, "invalid_rule"), (422, "validation_error"),
    ]  # fmt: skip
    assert client.get("/v1/rules", headers=auth(key)).json()["data"] == []


def test_aNulInFreeText_isRefused_notA500(client):
    """PostgreSQL refuses NUL in text: taken as it came it would fail the write, and the group."""
    partner = make_partner(client)
    key = partner["api_key"]
    rule = post(client, "/v1/rules", {"name": "bad\u0000name", "calculator": {"strategy": "fixed", "points": 1}}, key)
    member = post(client, "/v1/members", {"external_id": "x\u0000y"}, key)
    assert (rule.status_code, rule.json()["code"]) == (422, "validation_error")
    assert (member.status_code, member.json()["code"]) == (422, "validation_error")
