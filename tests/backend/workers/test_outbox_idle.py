"""An idle outbox writer waits longer between passes (each pass reads the database and the
chain: at 50 a second it took a quarter of a core from the API beside it), and still sends
what the API accepts within `idle_poll_s`."""

import threading
import time

from sqlalchemy import select
from support.backend import confirm_all, make_member, make_partner, post, wait_for

from loyalty.db.models import Earn, EarnStatus
from loyalty.workers.outbox import OutboxWriter


def test_idleWriter_backsOff_andSendsAnAcceptedEarnSoon(client):
    partner = make_partner(client, "Acme", 10**6)
    member = make_member(client, partner["api_key"])
    writer = OutboxWriter(client.app.state.runtime, poll_s=0.02, idle_poll_s=0.2)
    confirm_all(writer)  # the partner's account is set up: nothing is left to do
    passes = 0
    run_once = writer.run_once

    def counted():
        nonlocal passes
        passes += 1
        return run_once()

    writer.run_once = counted  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=writer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        time.sleep(2.0)
        assert passes <= 15  # 20 ms apart: about 100
        accepted = time.monotonic()
        body = {"member_id": member["id"], "amount_points": 7}
        assert post(client, "/v1/earn", body, partner["api_key"]).status_code == 202

        def confirmed():
            with client.app.state.runtime.sessions() as session:
                return session.scalar(select(Earn.status)) == EarnStatus.CONFIRMED

        wait_for(confirmed, timeout_s=10, every_s=0.01)
        assert time.monotonic() - accepted < 1.5
    finally:
        stop.set()
        thread.join(timeout=10)
    assert client.app.state.runtime.token.balance_of(member["wallet_address"]) == 7
