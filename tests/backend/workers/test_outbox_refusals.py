"""A transaction the node refuses was never accepted, so its rows go back to the queue: a
refusal about the transaction itself (too much gas) halves the batch; any other (a full pool,
no gas money yet) keeps it whole and holds the sender back for a moment, without spinning."""

import pytest
from sqlalchemy import func, select
from support.backend import confirm_all, make_member, make_partner, post

from loyalty.db.models import ChainWrite, Earn, EarnStatus, WriteKind, WriteStatus
from loyalty.errors import TxRefusedError


def _earn_batch_writes(client):
    with client.app.state.runtime.sessions() as session:
        return session.scalar(select(func.count()).where(ChainWrite.kind == WriteKind.EARN_BATCH))


@pytest.fixture
def pending(client, writer):
    partner = make_partner(client, "Acme", 10**6)
    members = [make_member(client, partner["api_key"]) for _ in range(6)]
    confirm_all(writer)
    post(
        client,
        "/v1/earn/batch",
        {"items": [{"member_id": m["id"], "amount_points": 4} for m in members]},
        partner["api_key"],
    )
    return members


@pytest.mark.parametrize("reason", ["txpool is full", "insufficient funds for gas * price + value"])
def test_refusal_notAboutTheTransaction_requeuesWholeAndHoldsBack(client, writer, pending, monkeypatch, reason):
    token = client.app.state.runtime.token

    def refuse(_signed):
        raise TxRefusedError(reason)

    monkeypatch.setattr(token.client, "broadcast", refuse)
    for _ in range(5):
        writer.run_once()
    assert _earn_batch_writes(client) == 1  # held back after the first refusal: no spinning
    with client.app.state.runtime.sessions() as session:
        earns = session.scalars(select(Earn)).all()
        assert {(e.status, e.write_id, e.batch_limit) for e in earns} == {(EarnStatus.PENDING, None, None)}
    monkeypatch.undo()
    writer._hold.clear()

    confirm_all(writer)

    assert [token.balance_of(m["wallet_address"]) for m in pending] == [4] * 6


def test_refusal_aboutTheTransaction_halvesTheBatch(client, writer, pending, monkeypatch):
    token = client.app.state.runtime.token
    real = token.client.broadcast
    calls = []

    def refuse_first(signed):
        calls.append(signed)
        if len(calls) == 1:
            raise TxRefusedError("exceeds block gas limit")
        real(signed)

    monkeypatch.setattr(token.client, "broadcast", refuse_first)
    writer.run_once()
    with client.app.state.runtime.sessions() as session:
        assert set(session.scalars(select(Earn.batch_limit))) == {3}
        assert session.scalars(select(ChainWrite.status).where(ChainWrite.kind == WriteKind.EARN_BATCH)).all() == [
            WriteStatus.DROPPED
        ]
    confirm_all(writer)

    assert [token.balance_of(m["wallet_address"]) for m in pending] == [4] * 6
