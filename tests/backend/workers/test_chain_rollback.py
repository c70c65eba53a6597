"""A chain that loses blocks (a dev chain killed and restarted from its last dump, a reorg):
writes the database counts as final but the chain no longer has are found and sent again,
the very same transactions, so every earn lands once."""

import time
from collections import Counter

from sqlalchemy import select
from support.backend import confirm_all, make_member, make_partner, post

from loyalty.db.models import ChainWrite, Earn, EarnStatus, WriteKind, WriteStatus


def _earn_rounds(client, partner, members, rounds, expected):
    for round_ in range(rounds):
        items = [{"member_id": m["id"], "amount_points": round_ + 1} for m in members]
        assert post(client, "/v1/earn/batch", {"items": items}, partner["api_key"]).status_code == 202
        expected.update({m["wallet_address"]: round_ + 1 for m in members})


def _confirmed_blocks(client):
    with client.app.state.runtime.sessions() as session:
        return sorted(
            session.scalars(select(ChainWrite.block_number).where(ChainWrite.status == WriteStatus.CONFIRMED))
        )


def test_devChainKilledAndRestarted_lostWritesAreSentAgain(chain_app, own_chain):
    client, writer = chain_app
    partner = make_partner(client, "Acme", 10**9)
    members = [make_member(client, partner["api_key"]) for _ in range(30)]
    expected = Counter()
    _earn_rounds(client, partner, members, 2, expected)
    confirm_all(writer)
    time.sleep(2.5)  # a dump holds all of that
    for _ in range(5):  # on a busy machine the chain may have dumped the last writes before the kill
        _earn_rounds(client, partner, members, 3, expected)
        confirm_all(writer)  # confirmed in the database...
        newest = _confirmed_blocks(client)[-1]
        own_chain.kill()  # ...and gone: the chain restarts from its last dump
        own_chain.start()
        if int(own_chain.rpc("eth_blockNumber"), 16) < newest:
            break
        confirm_all(writer)  # nothing was lost this time: again
    else:
        raise AssertionError("the chain never lost its last writes: it dumps them faster than they are confirmed")

    confirm_all(writer)

    token = client.app.state.runtime.token
    assert {w: token.balance_of(w) for w in expected} == dict(expected)
    with client.app.state.runtime.sessions() as session:
        assert set(session.scalars(select(Earn.status))) == {EarnStatus.CONFIRMED}


def test_reorg_writesOfDroppedBlocksAreSentAgainOnce(chain_app, own_chain):
    client, writer = chain_app
    partner = make_partner(client, "Acme", 10**9)
    members = [make_member(client, partner["api_key"]) for _ in range(5)]
    confirm_all(writer)  # the partner is set up before the fork point
    snapshot = own_chain.rpc("evm_snapshot")
    expected = Counter()
    _earn_rounds(client, partner, members, 2, expected)
    confirm_all(writer)
    assert own_chain.rpc("evm_revert", snapshot) is True  # the blocks with the earns are gone
    own_chain.rpc("anvil_mine", "0x5")  # and other blocks took their numbers

    confirm_all(writer)

    token = client.app.state.runtime.token
    assert {w: token.balance_of(w) for w in expected} == dict(expected)
    batches = token.contract.events.BatchEarned().get_logs(
        from_block=0, argument_filters={"issuer": partner["issuer_address"]}
    )
    with client.app.state.runtime.sessions() as session:
        final = session.scalars(select(ChainWrite).where(ChainWrite.kind == WriteKind.EARN_BATCH)).all()
    assert len(batches) == len(final) and {w.status for w in final} == {WriteStatus.CONFIRMED}
    assert {w.block_hash for w in final} <= {"0x" + bytes(b["blockHash"]).hex() for b in batches}


def test_confirmations_writeIsFinalOnlyWhenDeepEnough(chain_app, own_chain):
    client, writer = chain_app
    writer.runtime.confirmations = 3
    partner = make_partner(client, "Acme", 10**9)
    member = make_member(client, partner["api_key"])
    for _ in range(4):  # provisioning needs its blocks to be deep enough too
        writer.run_once()
        own_chain.rpc("anvil_mine", "0x3")
    writer.run_once()
    earn = post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 5}, partner["api_key"]).json()
    writer.run_once()  # sent and mined (1 confirmation)
    writer.run_once()
    assert client.app.state.runtime.token.balance_of(member["wallet_address"]) == 5
    status = lambda: client.get(f"/v1/earn/{earn['id']}", headers={"Authorization": "Bearer adm_test"}).json()["status"]  # noqa: E731
    assert status() == "pending"
    own_chain.rpc("anvil_mine", "0x1")
    writer.run_once()
    assert status() == "pending"  # 2 confirmations
    own_chain.rpc("anvil_mine", "0x1")
    writer.run_once()
    assert status() == "confirmed"  # 3
