"""Integers the database cannot hold (2^63 and up) and explicit nulls are bad input: 4xx
problems, never a 500, and nothing reaches the chain."""

import concurrent.futures

import httpx
import pytest
from support.backend import ADMIN_KEY, auth, make_member, make_partner, post, serving

from loyalty.db.models import Partner

BIG = 2**63


@pytest.mark.parametrize(
    "path",
    [f"/v1/members/{BIG}", f"/v1/members/{BIG}/history", f"/v1/earn/{BIG}", f"/v1/rewards/{BIG}",
     f"/v1/redemptions/{BIG}", f"/v1/audit/members/{BIG}", f"/v1/redemptions/typed-data?member_id={BIG}&reward_id=1",
     f"/v1/members/{2**64}"],
)  # fmt: skip
def test_get_withAnIdTooBig_isValidationError(client, path):
    response = client.get(path, headers=auth(ADMIN_KEY))
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/partners", {"name": "Big", "issue_budget_points": BIG}),
        ("/v1/partners", {"name": "Big", "issue_budget_points": 2**128}),
        ("/v1/earn", {"member_id": BIG, "amount_points": 1}),
        ("/v1/earn/batch", {"items": [{"member_id": 1, "amount_points": 1}, {"member_id": BIG, "amount_points": 1}]}),
        ("/v1/redemptions", {"member_id": BIG, "reward_id": 1}),
        ("/v1/redemptions", {"member_id": 1, "reward_id": 1, "signature": "0x" + "11" * 65, "deadline": 2**64}),
        ("/v1/rewards", {"name": "x", "cost_points": BIG, "stock": 1}),
    ],
)
def test_post_withAnIntegerTooBig_isValidationError(client, path, body):
    key = make_partner(client, "P")["api_key"] if path in ("/v1/earn", "/v1/earn/batch", "/v1/rewards") else ADMIN_KEY
    response = post(client, path, body, key)
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


def test_createPartner_withTooBigABudget_leavesNothingBehind(client):
    response = post(client, "/v1/partners", {"name": "Big", "issue_budget_points": BIG}, ADMIN_KEY)
    assert response.status_code == 422
    with client.app.state.runtime.sessions() as session:
        assert session.query(Partner).count() == 0


@pytest.mark.parametrize("field", ["name", "description", "cost_points", "stock", "active"])
def test_patchReward_withExplicitNull_isValidationError(client, field):
    partner = make_partner(client, "Acme")
    reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 5, "stock": 1}, partner["api_key"]).json()
    response = client.patch(f"/v1/rewards/{reward['id']}", json={field: None}, headers=auth(partner["api_key"]))
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert "cannot be null" in response.json()["detail"]


def test_earn_oneBadRequestAmongConcurrentOnes_failsAlone(client, settings):
    """Requests are written in groups; one with an id too big is refused before it joins one."""
    good, bad = make_partner(client, "Good"), make_partner(client, "Bad")
    member = make_member(client, good["api_key"])
    with serving(settings, outbox=False) as url:

        def send(i):
            key, member_id = (bad["api_key"], BIG) if i == 50 else (good["api_key"], member["id"])
            headers = {**auth(key), "Idempotency-Key": f"k{i}"}
            return httpx.post(f"{url}/v1/earn", json={"member_id": member_id, "amount_points": 1}, headers=headers)

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            statuses = [r.status_code for r in pool.map(send, range(101))]
    assert statuses[50] == 422
    assert statuses[:50] + statuses[51:] == [202] * 100
