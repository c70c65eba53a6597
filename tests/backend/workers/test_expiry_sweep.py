"""The worker sweeps expired points on a schedule, so an indexer that sums `Transfer` events
(wallets, explorers) stops counting them, though the member never earns again."""

from sqlalchemy import select
from support.backend import ADMIN_KEY, confirm_all, make_member, make_partner, post, second_program

from loyalty.db.models import ExpirySweep

DAY = 86_400


def _transfer_sum(token, wallet):
    """What an indexer summing Transfer events says the wallet holds."""
    logs = token.contract.events.Transfer().get_logs(from_block=0)
    return sum(
        int(log["args"]["value"]) * ((log["args"]["to"] == wallet) - (log["args"]["from"] == wallet)) for log in logs
    )


def test_sweep_burnsExpiredPointsOfMembersWhoNeverEarnAgain(chain_app, own_chain):
    client, writer = chain_app
    partner = make_partner(client, "Acme", 10**6)
    old = [make_member(client, partner["api_key"]) for _ in range(3)]
    for member in old:
        post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 50}, partner["api_key"])
    confirm_all(writer)
    own_chain.rpc("evm_increaseTime", 11 * DAY)
    own_chain.rpc("evm_mine")
    fresh = make_member(client, partner["api_key"])
    post(client, "/v1/earn", {"member_id": fresh["id"], "amount_points": 70}, partner["api_key"])
    confirm_all(writer)
    own_chain.rpc("evm_increaseTime", DAY)  # the old members' points (12 daily epochs) expired just now
    own_chain.rpc("evm_mine")
    token = client.app.state.runtime.token
    assert [_transfer_sum(token, m["wallet_address"]) for m in old] == [50, 50, 50]  # still, to an indexer

    confirm_all(writer)

    assert [_transfer_sum(token, m["wallet_address"]) for m in old] == [0, 0, 0]
    assert all(points == 0 for points in token.expired_balances([m["wallet_address"] for m in old]).values())
    assert _transfer_sum(token, fresh["wallet_address"]) == token.balance_of(fresh["wallet_address"]) == 70
    with client.app.state.runtime.sessions() as session:
        sweeps = session.scalars(select(ExpirySweep).order_by(ExpirySweep.id)).all()
    assert sweeps[-1].members_swept == 3
    confirm_all(writer)  # nothing new expired: no more sweeps sent
    with client.app.state.runtime.sessions() as session:
        assert session.scalars(select(ExpirySweep).order_by(ExpirySweep.id.desc())).first().id == sweeps[-1].id


def test_sweep_burnsExpiredPointsInEveryProgram(chain_app, own_chain, tmp_path):
    client, writer = chain_app
    miles = second_program(client, own_chain.url, tmp_path, epoch_length_s=DAY, validity_epochs=3)
    partner = make_partner(client, "Airline", 0)
    joined = post(
        client, f"/v1/partners/{partner['id']}/programs", {"program_id": miles, "issue_budget_points": 10**6}, ADMIN_KEY
    )
    assert joined.status_code == 201, joined.text
    member = make_member(client, partner["api_key"])
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 50, "program_id": miles}, partner["api_key"])
    confirm_all(writer)
    address = client.get(f"/v1/programs/{miles}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()[
        "token_address"
    ]
    token = client.app.state.runtime.token_at(address)
    own_chain.rpc("evm_increaseTime", 3 * DAY)  # 3 daily epochs: the miles expired
    own_chain.rpc("evm_mine")
    assert (token.balance_of(member["wallet_address"]), _transfer_sum(token, member["wallet_address"])) == (0, 50)

    confirm_all(writer)

    assert _transfer_sum(token, member["wallet_address"]) == 0
    with client.app.state.runtime.sessions() as session:
        swept = session.scalars(select(ExpirySweep).where(ExpirySweep.program_id == miles)).all()
    assert [s.members_swept for s in swept] == [1]
