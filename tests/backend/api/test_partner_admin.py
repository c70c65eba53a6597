"""The operator's everyday partner work: read a budget, rotate a key (the old one is refused),
deactivate a partner (what it accepted still lands)."""

from support.backend import ADMIN_KEY, auth, confirm_all, make_member, make_partner, post


def test_budget_showsGrantedUsedPendingAndAvailable(client, writer):
    partner = make_partner(client, "Acme", 1_000)
    member = make_member(client, partner["api_key"])
    confirm_all(writer)
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 300}, partner["api_key"])
    pending = client.get(f"/v1/partners/{partner['id']}/budget", headers=auth(partner["api_key"])).json()
    confirm_all(writer)
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 50}, partner["api_key"])
    later = client.get(f"/v1/partners/{partner['id']}/budget", headers=auth(ADMIN_KEY)).json()

    assert pending == {
        "granted_points": 1_000,
        "onchain_points": 1_000,
        "used_points": 0,
        "pending_points": 300,
        "to_grant_points": 0,
        "moved_points": 0,
        "to_move_points": 0,
        "available_points": 700,
    }
    assert later == {
        "granted_points": 1_000,
        "onchain_points": 700,
        "used_points": 300,
        "pending_points": 50,
        "to_grant_points": 0,
        "moved_points": 0,
        "to_move_points": 0,
        "available_points": 650,
    }


def test_keyRotation_refusesTheOldKeyAndReplaysTheNewOne(client):
    partner, other = make_partner(client, "Acme"), make_partner(client, "Other")
    first = post(client, f"/v1/partners/{partner['id']}/key-rotations", None, partner["api_key"], idempotency_key="r1")
    again = post(client, f"/v1/partners/{partner['id']}/key-rotations", None, partner["api_key"], idempotency_key="r1")
    foreign = post(client, f"/v1/partners/{partner['id']}/key-rotations", None, other["api_key"])

    new_key = first.json()["api_key"]
    assert first.status_code == 201 and new_key.startswith("ptn_") and new_key != partner["api_key"]
    assert client.get("/v1/members", headers=auth(partner["api_key"])).status_code == 401
    assert client.get("/v1/members", headers=auth(new_key)).status_code == 200
    assert again.status_code == 401  # the old key cannot even replay
    assert (foreign.status_code, foreign.json()["code"]) == (404, "partner_not_found")


def test_auditorKeyRotation_byTheAdmin(client):
    auditor = post(client, "/v1/auditors", {"name": "Audit Co"}, ADMIN_KEY).json()
    rotated = post(client, f"/v1/auditors/{auditor['id']}/key-rotations", None, ADMIN_KEY).json()
    assert client.get("/v1/partners", headers=auth(auditor["api_key"])).status_code == 401
    assert client.get("/v1/partners", headers=auth(rotated["api_key"])).status_code == 200


def test_deactivatedPartner_isRefusedButWhatItAcceptedLands(client, writer):
    partner = make_partner(client, "Acme")
    member = make_member(client, partner["api_key"])
    reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 1, "stock": 5}, partner["api_key"]).json()
    earn = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 5}, partner["api_key"]).json()

    deactivated = post(client, f"/v1/partners/{partner['id']}/deactivate", None, ADMIN_KEY)
    refused = client.get("/v1/members", headers=auth(partner["api_key"]))
    confirm_all(writer)

    assert deactivated.json()["status"] == "deactivated"
    assert (refused.status_code, refused.json()["code"]) == (403, "partner_deactivated")
    assert client.get(f"/v1/earn/{earn['id']}", headers=auth(ADMIN_KEY)).json()["status"] == "confirmed"
    assert client.get(f"/v1/rewards/{reward['id']}", headers=auth(ADMIN_KEY)).json()["active"] is False
