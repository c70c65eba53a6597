"""Budget granted by the admin reaches the chain exactly once, and earns sent around it can
never be counted twice: the grant sets the on-chain budget to what is left plus the grant, so
the partner's earn batches wait while it is on its way."""

from support.backend import ADMIN_KEY, auth, confirm_all, make_member, make_partner, post


def _budget(client, partner):
    return client.get(f"/v1/partners/{partner['id']}/budget", headers=auth(ADMIN_KEY)).json()


def test_grant_reachesTheChainOnce_andEarnsAroundItAreCountedOnce(client, writer):
    partner = make_partner(client, "Acme", 100)
    member = make_member(client, partner["api_key"])
    confirm_all(writer)
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 30}, partner["api_key"])
    writer.run_once()  # the first batch goes out
    first = post(client, f"/v1/partners/{partner['id']}/budget/grants", {"amount_points": 70}, ADMIN_KEY, "g1")
    replay = post(client, f"/v1/partners/{partner['id']}/budget/grants", {"amount_points": 70}, ADMIN_KEY, "g1")
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 20}, partner["api_key"])
    too_much = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 51}, partner["api_key"])

    confirm_all(writer)

    assert first.status_code == 201 and first.json()["to_grant_points"] == 70
    assert replay.json() == first.json() and replay.headers["idempotent-replay"] == "true"
    assert (too_much.status_code, too_much.json()["code"]) == (422, "budget_exceeded")  # the grant is not on-chain yet
    assert _budget(client, partner) == {
        "granted_points": 170,
        "onchain_points": 120,
        "used_points": 50,
        "pending_points": 0,
        "to_grant_points": 0,
        "moved_points": 0,
        "to_move_points": 0,
        "available_points": 120,
    }
    assert (
        post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 120}, partner["api_key"]).status_code
        == 202
    )
    confirm_all(writer)
    assert _budget(client, partner)["onchain_points"] == 0


def test_grant_beforeThePartnerIsSetUp_reachesTheChainOnce(client, writer):
    """Set-up gives the account what was granted less grants still on their way; the grant then
    goes as its own write (it was given twice)."""
    partner = make_partner(client, "Acme", 100)
    granted = post(client, f"/v1/partners/{partner['id']}/budget/grants", {"amount_points": 50}, ADMIN_KEY)
    confirm_all(writer)
    assert granted.status_code == 201
    assert _budget(client, partner)["onchain_points"] == 150


def test_grant_onlyForTheAdmin(client):
    partner = make_partner(client, "Acme", 100)
    response = post(client, f"/v1/partners/{partner['id']}/budget/grants", {"amount_points": 5}, partner["api_key"])
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
