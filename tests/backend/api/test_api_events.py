"""Custom events and enrolments end to end on Anvil: priced by the partner's `event` and
`enrolment` rules, minted at once, each event id earning once; segments and limits hold."""

from datetime import UTC, datetime, timedelta

from support.backend import auth, confirm_all, make_member, make_partner, post, token_of

REVIEW = {"name": "50 for a review", "trigger": "event", "event_type": "review_written",
          "calculator": {"strategy": "fixed", "points": 50}, "limits": {"per_member": 100, "period": "day"}}  # fmt: skip
WELCOME = {"name": "Welcome", "trigger": "enrolment", "calculator": {"strategy": "fixed", "points": 25}}


def _event(client, partner, member, event_id, type_="review_written", **extra):
    body = {
        "member_id": member["id"],
        "event_id": event_id,
        "type": type_,
        "occurred_at": datetime.now(UTC).isoformat(),
        **extra,
    }
    return post(client, "/v1/events", body, partner["api_key"])


def test_event_earnsThroughItsRules_onceAndAtOnce(client, writer):
    partner = make_partner(client)
    assert post(client, "/v1/rules", REVIEW, partner["api_key"]).status_code == 201
    member = make_member(client, partner["api_key"])

    first = _event(client, partner, member, "rev-1", properties={"stars": 5, "product": "beans"})
    replayed = _event(client, partner, member, "rev-1")
    second = _event(client, partner, member, "rev-2")
    third = _event(client, partner, member, "rev-3")  # the day's limit is 100
    other = _event(client, partner, member, "visit-1", "store_visit")
    confirm_all(writer)

    assert first.status_code == 201, first.text
    assert (first.json()["total_points"], first.json()["properties"]) == (50, {"stars": 5, "product": "beans"})
    assert (replayed.status_code, replayed.json()["code"]) == (409, "event_exists")
    assert second.json()["total_points"] == 50
    assert (third.status_code, third.json()["total_points"]) == (201, 0)
    assert other.json()["awards"] == []
    assert token_of(client).balance_of(member["wallet_address"]) == 100
    listed = client.get(f"/v1/events?member_id={member['id']}", headers=auth(partner["api_key"])).json()["data"]
    assert [e["event_id"] for e in listed] == ["rev-1", "rev-2", "rev-3", "visit-1"]


def test_enrolment_isRewardedByTheEnrollingPartnersRules(client, writer):
    partner = make_partner(client)
    assert post(client, "/v1/rules", WELCOME, partner["api_key"]).status_code == 201
    welcomed = make_member(client, partner["api_key"])
    by_operator = make_member(client)  # no partner enrolled it: no partner's bonus
    confirm_all(writer)

    token = token_of(client)
    assert token.balance_of(welcomed["wallet_address"]) == 25
    assert token.balance_of(by_operator["wallet_address"]) == 0
    enrolments = client.get("/v1/events", headers=auth(partner["api_key"])).json()["data"]
    assert [(e["type"], e["member_id"], e["total_points"]) for e in enrolments] == [("enrolment", welcomed["id"], 25)]


def test_event_refusals_areProblemsWithStableCodes(client):
    partner = make_partner(client, budget=10)
    assert post(client, "/v1/rules", REVIEW, partner["api_key"]).status_code == 201
    member = make_member(client, partner["api_key"])
    stranger = make_member(client, make_partner(client, "Other")["api_key"])
    old = (datetime.now(UTC) - timedelta(days=91)).isoformat()

    assert _event(client, partner, member, "x-1").json()["code"] == "budget_exceeded"  # 50 of 10
    assert _event(client, partner, stranger, "x-2").json()["code"] == "member_not_found"
    assert _event(client, partner, member, "enrolment:9").json()["code"] == "validation_error"
    assert _event(client, partner, member, "x-3", occurred_at=old).json()["code"] == "validation_error"
    assert _event(client, partner, member, "x-4", properties={"deep": {"no": 1}}).json()["code"] == "validation_error"
    naive = {
        "member_id": member["id"],
        "event_id": "x-5",
        "type": "review_written",
        "occurred_at": "2026-11-23T09:30:00",
    }
    assert post(client, "/v1/events", naive, partner["api_key"]).json()["code"] == "validation_error"
