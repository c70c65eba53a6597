"""Challenges on Anvil: purchases, net spend and events counted per period against a target, for
the members they are for (a segment tag), completed once with points from a campaign's budget
(cut when it runs short) and badges, progress shown to the member and the brand, and
`challenge.completed` heard by the brand's webhook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from support.backend import ADMIN_KEY, auth, confirm_all, link, make_member, make_partner, post, sign_in, token_of
from support.webhooks import Receiver

from loyalty.services import challenges
from loyalty.workers.webhooks import WebhookSender, deliver_all

PER_DOLLAR = {"name": "1 point per dollar net", "calculator": {"strategy": "per_spend", "points": 1, "per_minor": 100}}


def _buy(client: Any, brand: dict[str, Any], member: dict[str, Any], order_id: str, *dollars: int) -> None:
    lines = [{"sku": f"basket-{i}", "quantity": 1, "unit_price_minor": d * 100} for i, d in enumerate(dollars)]
    body = {"member_id": member["id"], "order_id": order_id, "occurred_at": datetime.now(UTC).isoformat(),
            "currency": "USD", "lines": lines}  # fmt: skip
    bought = post(client, "/v1/purchases", body, brand["api_key"])
    assert bought.status_code == 202, bought.text


def _challenge(client: Any, brand: dict[str, Any], **fields: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    window = {"starts_at": (now - timedelta(days=1)).isoformat(), "ends_at": (now + timedelta(days=30)).isoformat()}
    made = post(client, "/v1/challenges", {**window, **fields}, brand["api_key"])
    assert made.status_code == 201, made.text
    return dict(made.json())


def test_challenges_completeOncePerPeriod_withTheirRewards_forTheMembersTheyAreFor(client, writer, receiver: Receiver):
    grocer = make_partner(client, "Grocer")
    assert post(client, "/v1/rules", PER_DOLLAR, grocer["api_key"]).status_code == 201
    now = datetime.now(UTC)
    campaign = post(client, "/v1/campaigns", {"name": "Challenge rewards", "starts_at": (now - timedelta(days=1)).isoformat(),
                                               "ends_at": (now + timedelta(days=60)).isoformat(),
                                               "effect": {"kind": "bonus", "points": 1}, "budget_points": 300,
                                               "conditions": {"segments": ["nobody"]}},
                    grocer["api_key"])  # fmt: skip
    assert campaign.status_code == 201, campaign.text
    hook = post(
        client, "/v1/webhooks", {"url": receiver.url, "event_types": ["challenge.completed"]}, grocer["api_key"]
    )
    assert hook.status_code == 201, hook.text
    visits = _challenge(client, grocer, name="Three visits a week", metric="purchases", target=3, period="weekly",
                        reward_points=200, campaign_id=campaign.json()["id"], badge="regular")  # fmt: skip
    big = _challenge(client, grocer, name="Big spender", metric="net_spend", target=5_000, badge="big spender",
                     segment="vip")  # fmt: skip
    review = _challenge(client, grocer, name="Write a review", metric="events", event_type="review", target=1,
                        reward_points=150, campaign_id=campaign.json()["id"])  # fmt: skip
    ann, bob, cat = (make_member(client, grocer["api_key"]) for _ in range(3))
    tagged = client.put(f"/v1/members/{bob['id']}/segments", json={"tags": ["vip"]}, headers=auth(grocer["api_key"]))
    assert tagged.status_code == 200, tagged.text
    for n in range(3):
        _buy(client, grocer, ann, f"A-{n}", 10)
    _buy(client, grocer, bob, "B-1", 60)
    _buy(client, grocer, cat, "C-1", 60)  # spends as much as bob, but is not a vip
    event = {"member_id": ann["id"], "type": "review", "event_id": "R-1", "occurred_at": now.isoformat()}
    assert post(client, "/v1/events", event, grocer["api_key"]).status_code in (201, 202)

    before = client.get(f"/v1/members/{ann['id']}/challenges", headers=auth(grocer["api_key"])).json()
    shown = {c["challenge_id"]: c for c in before["challenges"]}
    assert (shown[visits["id"]]["value"], shown[visits["id"]]["completed"]) == (3, False)
    assert shown[big["id"]]["value"] == 3_000

    assert writer.evaluate_challenges() == 3  # ann's visits and review, bob's big spend
    confirm_all(writer)  # its housekeeping evaluates too
    assert writer.evaluate_challenges() == 0  # once
    confirm_all(writer)

    mine = client.get("/v1/me/challenges", headers=auth(sign_in(client, ann))).json()
    done = {c["challenge_id"]: c for c in mine["challenges"]}
    assert done[visits["id"]]["completed"] and done[visits["id"]]["points"] == 200
    assert done[review["id"]]["points"] == 100  # the campaign's 300, less the 200 paid first
    assert mine["badges"] == ["regular"]
    assert token_of(client).balance_of(ann["wallet_address"]) == 30 + 200 + 100
    bob_shown = client.get(f"/v1/members/{bob['id']}/challenges", headers=auth(ADMIN_KEY)).json()
    assert bob_shown["badges"] == ["big spender"]
    cat_shown = client.get(f"/v1/members/{cat['id']}/challenges", headers=auth(ADMIN_KEY)).json()
    assert cat_shown["badges"] == [] and not any(c["completed"] for c in cat_shown["challenges"])

    sender = WebhookSender(client.app.state.runtime, timeout_s=1.0, retry_base_s=0.0)
    assert deliver_all(sender) == 3
    kinds = sorted((b["data"]["challenge_id"], b["data"]["member_id"]) for b in receiver.bodies())
    assert kinds == sorted([(visits["id"], ann["id"]), (review["id"], ann["id"]), (big["id"], bob["id"])])

    refused = post(client, "/v1/challenges", {"name": "x", "metric": "events", "target": 1, "badge": "b",
                                              "starts_at": now.isoformat(), "ends_at": (now + timedelta(days=1)).isoformat()},
                   grocer["api_key"])  # fmt: skip
    assert (refused.status_code, refused.json()["code"]) == (
        422,
        "validation_error",
    )  # an events challenge names its type
    other = make_partner(client, "Other")
    assert client.get(f"/v1/members/{ann['id']}/challenges", headers=auth(other["api_key"])).status_code == 404


def test_challenges_countPurchasesNetOfRefunds_andShowABrandOnlyItsOwnBadges(client, writer) -> None:
    grocer, cinema = make_partner(client, "Grocer"), make_partner(client, "Cinema")
    first = _challenge(client, grocer, name="First shop", metric="purchases", target=1, badge="first shop")
    big = _challenge(client, grocer, name="Big spender", metric="net_spend", target=5_000, badge="big spender")
    dan, eve = make_member(client, grocer["api_key"]), make_member(client, grocer["api_key"])
    _buy(client, grocer, dan, "D-1", 60)
    _buy(client, grocer, eve, "E-1", 30, 30)
    refund = {"refund_id": "r1"}
    assert post(client, "/v1/purchases/D-1/refunds", refund, grocer["api_key"]).status_code in (200, 201, 202)
    refund = {"refund_id": "r1", "lines": [{"sku": "basket-1", "quantity": 1}]}
    assert post(client, "/v1/purchases/E-1/refunds", refund, grocer["api_key"]).status_code in (200, 201, 202)

    shown = client.get(f"/v1/members/{eve['id']}/challenges", headers=auth(grocer["api_key"])).json()
    values = {c["challenge_id"]: c["value"] for c in shown["challenges"]}
    assert values == {first["id"]: 1, big["id"]: 3_000}  # half of her $60 came back
    assert writer.evaluate_challenges() == 1  # eve's first shop; dan took all of his back
    dan_shown = client.get(f"/v1/members/{dan['id']}/challenges", headers=auth(grocer["api_key"])).json()
    assert [c["value"] for c in dan_shown["challenges"]] == [0, 0] and dan_shown["badges"] == []

    link(client, eve, cinema)
    assert client.get(f"/v1/members/{eve['id']}/challenges", headers=auth(grocer["api_key"])).json()["badges"] == [
        "first shop"
    ]
    assert client.get(f"/v1/members/{eve['id']}/challenges", headers=auth(cinema["api_key"])).json()["badges"] == []
    assert client.get("/v1/me/challenges", headers=auth(sign_in(client, eve))).json()["badges"] == ["first shop"]


def test_challenges_aWeekCutShortByTheWindowsEnd_isStillCompletedOnTheDayAfter(client, writer) -> None:
    grocer = make_partner(client, "Grocer")
    now = datetime.now(UTC)
    made = post(client, "/v1/challenges", {"name": "Last call", "metric": "purchases", "target": 1, "period": "weekly",
                                           "badge": "last call", "starts_at": (now - timedelta(days=1)).isoformat(),
                                           "ends_at": (now + timedelta(minutes=1)).isoformat()},
                grocer["api_key"])  # fmt: skip
    assert made.status_code == 201, made.text
    ann = make_member(client, grocer["api_key"])
    _buy(client, grocer, ann, "A-1", 10)
    with client.app.state.runtime.sessions() as session:  # the outbox's next look, an hour after the end
        assert challenges.evaluate(session, now + timedelta(hours=1)) == 1
        session.commit()
        assert challenges.evaluate(session, now + timedelta(days=2)) == 0
