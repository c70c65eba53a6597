"""One partner whose writes cannot be made never holds up another partner's."""

from support.backend import auth, confirm_all, link, make_member, make_partner, post

from loyalty.db.models import Partner


def test_outbox_partnerWhoseKeyCannotBeOpened_doesNotStopOthers(client, writer):
    broken, fine = make_partner(client, "Broken", 10_000), make_partner(client, "Fine", 10_000)
    member = make_member(client, broken["api_key"])
    link(client, member, fine)
    confirm_all(writer)
    with client.app.state.runtime.sessions() as session:
        session.get(Partner, broken["id"]).issuer_key_sealed = b"\0" * 60  # will not decrypt
        session.commit()
    stuck = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 5}, broken["api_key"]).json()
    earn = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 7}, fine["api_key"]).json()

    confirm_all(writer)

    assert client.get(f"/v1/earn/{earn['id']}", headers=auth(fine["api_key"])).json()["status"] == "confirmed"
    assert client.get(f"/v1/earn/{stuck['id']}", headers=auth(broken["api_key"])).json()["status"] == "pending"
    assert client.app.state.runtime.token.balance_of(member["wallet_address"]) == 7
