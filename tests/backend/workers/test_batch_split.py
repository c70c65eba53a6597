"""A bad earn never fails the others in its batch: a batch that reverts because of one member
is sent again without that member's earns, which fail with the reason; one that reverts for no
named reason is halved until the bad earn stands alone."""

from sqlalchemy import select
from support.backend import auth, confirm_all, make_member, make_partner, post

from loyalty.chain import token as token_module
from loyalty.db.models import ChainWrite, Member, MemberLink, WriteKind, WriteStatus


def _legacy_member(client, wallet, partner_id):
    """A member enrolled before wallets were checked (the API refuses these now)."""
    with client.app.state.runtime.sessions() as session:
        member = Member(external_id=f"legacy-{wallet}", wallet_address=wallet, custodial=False)
        session.add(member)
        session.flush()
        session.add(MemberLink(member_id=member.id, partner_id=partner_id, source="enrolment"))
        session.commit()
        return member.id


def test_batch_withAZeroWallet_landsEveryOtherEarnAndFailsThatOne(client, writer):
    partner = make_partner(client, "Acme", 10**6)
    good = [make_member(client, partner["api_key"]) for _ in range(20)]
    bad = _legacy_member(client, "0x" + "00" * 20, partner["id"])
    items = [{"member_id": m["id"], "amount_points": 10} for m in good[:10]]
    items += [{"member_id": bad, "amount_points": 10}]
    items += [{"member_id": m["id"], "amount_points": 10} for m in good[10:]]
    ids = post(client, "/v1/earn/batch", {"items": items}, partner["api_key"]).json()["ids"]

    confirm_all(writer)

    earns = [client.get(f"/v1/earn/{i}", headers=auth(partner["api_key"])).json() for i in ids]
    assert [e["status"] for e in earns] == ["confirmed"] * 10 + ["failed"] + ["confirmed"] * 10
    assert earns[10]["error"].startswith("LoyaltyInvalidMember(")
    token = client.app.state.runtime.token
    assert [token.balance_of(m["wallet_address"]) for m in good] == [10] * 20
    # the budget of the failed earn is free again
    big = post(client, "/v1/earn", {"member_id": good[0]["id"], "amount_points": 10**6 - 200}, partner["api_key"])
    assert big.status_code == 202, big.text


def test_batch_outOfGasForNoNamedReason_isHalvedUntilItLands(client, writer, monkeypatch):
    partner = make_partner(client, "Acme", 10**6)
    members = [make_member(client, partner["api_key"]) for _ in range(8)]
    confirm_all(writer)
    items = [{"member_id": m["id"], "amount_points": 3} for m in members]
    post(client, "/v1/earn/batch", {"items": items}, partner["api_key"])
    monkeypatch.setattr(token_module, "EARN_BATCH_GAS_PER_MEMBER", 2_000)  # far too little: out of gas
    writer.run_once()
    writer.run_once()
    monkeypatch.undo()

    confirm_all(writer)

    token = client.app.state.runtime.token
    assert [token.balance_of(m["wallet_address"]) for m in members] == [3] * 8
    with client.app.state.runtime.sessions() as session:
        failed = session.scalars(
            select(ChainWrite).where(ChainWrite.kind == WriteKind.EARN_BATCH, ChainWrite.status == WriteStatus.FAILED)
        ).all()
    assert failed and all(w.error.startswith("OutOfGas(") for w in failed)
