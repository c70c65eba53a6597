"""The reward catalog: partners own their rewards, everyone reads the catalog."""

import pytest
from support.backend import ADMIN_KEY, auth, make_partner, post

REWARD = {"name": "Coffee", "description": "A cup", "cost_points": 100, "stock": 5}


@pytest.fixture
def partner(client):
    return make_partner(client, "Acme")


def test_reward_createListGetPatch(client, partner):
    created = post(client, "/v1/rewards", REWARD, partner["api_key"])
    assert created.status_code == 201
    reward = created.json()
    assert {k: reward[k] for k in REWARD} == REWARD
    assert reward["active"] is True

    assert [r["id"] for r in client.get("/v1/rewards", headers=auth(ADMIN_KEY)).json()["data"]] == [reward["id"]]
    patched = client.patch(
        f"/v1/rewards/{reward['id']}", json={"stock": 9, "active": False}, headers=auth(partner["api_key"])
    )
    assert (patched.json()["stock"], patched.json()["active"]) == (9, False)
    assert client.get("/v1/rewards?active=true", headers=auth(ADMIN_KEY)).json()["data"] == []


def test_reward_patchFailsForOtherPartner(client, partner):
    reward = post(client, "/v1/rewards", REWARD, partner["api_key"]).json()
    other = make_partner(client, "Other")
    response = client.patch(f"/v1/rewards/{reward['id']}", json={"stock": 0}, headers=auth(other["api_key"]))
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")


@pytest.mark.parametrize(
    "body",
    [
        {**REWARD, "cost_points": 0},
        {**REWARD, "stock": -1},
        {**REWARD, "name": ""},
        {k: v for k, v in REWARD.items() if k != "cost_points"},
        {**REWARD, "active": 0},
        {**REWARD, "stock": "5"},
    ],
)
def test_reward_badInputIsRefused(client, partner, body):
    response = post(client, "/v1/rewards", body, partner["api_key"])
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")


def test_reward_unknownIdIsNotFound(client):
    response = client.get("/v1/rewards/999", headers=auth(ADMIN_KEY))
    assert (response.status_code, response.json()["code"]) == (404, "reward_not_found")
