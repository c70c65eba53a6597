"""A sender's nonces keep moving: a nonce no live write holds below a pending transaction (a
write dropped after a rollback, say) is filled with a transfer of nothing, so what waits behind
it is mined; a write stuck for long is cancelled the same way and its rows go out again."""

from datetime import timedelta

from sqlalchemy import select, update
from support.backend import confirm_all, make_member, make_partner, post

from loyalty.db.models import ChainWrite, Earn, EarnStatus, WriteKind, WriteStatus, utcnow
from loyalty.errors import TxRefusedError


def _batch(client, partner, members, amount):
    post(
        client,
        "/v1/earn/batch",
        {"items": [{"member_id": m["id"], "amount_points": amount} for m in members]},
        partner["api_key"],
    )


def test_gapBelowAPendingWrite_isFilledAndEverythingLands(chain_app, own_chain, monkeypatch):
    client, writer = chain_app
    partner = make_partner(client, "Acme", 10**6)
    first, second = (
        [make_member(client, partner["api_key"]) for _ in range(3)],
        [make_member(client, partner["api_key"]) for _ in range(3)],
    )
    confirm_all(writer)
    monkeypatch.setattr(writer.token, "max_batch_size", lambda _limit: 3)  # both batches full: both go out
    own_chain.rpc("evm_setAutomine", False)
    _batch(client, partner, first, 5)
    _batch(client, partner, second, 7)
    writer.run_once()
    with client.app.state.runtime.sessions() as session:
        w1, _ = session.scalars(
            select(ChainWrite).where(ChainWrite.kind == WriteKind.EARN_BATCH).order_by(ChainWrite.nonce)
        ).all()
        # the first batch vanished (a rollback dropped it, its earns went back to the queue,
        # where they wait: a part-full batch does not go while another is in flight), and the
        # second waits in the node behind its nonce
        session.execute(update(ChainWrite).where(ChainWrite.id == w1.id).values(status=WriteStatus.DROPPED))
        session.execute(update(Earn).where(Earn.write_id == w1.id).values(write_id=None))
        session.commit()
    own_chain.rpc("anvil_dropTransaction", w1.tx_hash)
    own_chain.rpc("evm_setAutomine", True)
    monkeypatch.undo()

    confirm_all(writer)

    token = client.app.state.runtime.token
    assert [token.balance_of(m["wallet_address"]) for m in first + second] == [5] * 3 + [7] * 3
    with client.app.state.runtime.sessions() as session:
        cancels = session.scalars(select(ChainWrite).where(ChainWrite.kind == WriteKind.CANCEL)).all()
        assert [(c.nonce, c.status) for c in cancels] == [(w1.nonce, WriteStatus.CONFIRMED)]


def test_writeStuckForLong_isCancelledAndItsEarnsGoOutAgain(chain_app, own_chain, monkeypatch):
    client, writer = chain_app
    partner = make_partner(client, "Acme", 10**6)
    members = [make_member(client, partner["api_key"]) for _ in range(3)]
    confirm_all(writer)
    own_chain.rpc("evm_setAutomine", False)
    _batch(client, partner, members, 9)
    writer.run_once()
    with client.app.state.runtime.sessions() as session:
        stuck = session.scalars(select(ChainWrite).where(ChainWrite.kind == WriteKind.EARN_BATCH)).one()
        session.execute(
            update(ChainWrite).where(ChainWrite.id == stuck.id).values(created_at=utcnow() - timedelta(hours=1))
        )
        session.commit()
    own_chain.rpc("anvil_dropTransaction", stuck.tx_hash)
    own_chain.rpc("evm_setAutomine", True)
    token = client.app.state.runtime.token
    real = token.client.broadcast

    def refuse_the_stuck_one(signed):  # the node will not take it again (its fee is too low now, say)
        if signed.tx_hash == stuck.tx_hash:
            raise TxRefusedError("max fee per gas less than block base fee")
        real(signed)

    monkeypatch.setattr(token.client, "broadcast", refuse_the_stuck_one)

    confirm_all(writer)

    assert [token.balance_of(m["wallet_address"]) for m in members] == [9] * 3
    with client.app.state.runtime.sessions() as session:
        assert session.get(ChainWrite, stuck.id).status == WriteStatus.DROPPED
        assert set(session.scalars(select(Earn.status))) == {EarnStatus.CONFIRMED}
