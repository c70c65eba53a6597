"""The Alembic migrations build exactly the schema the models describe, on each database."""

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from loyalty.db.models import Base
from loyalty.db.session import upgrade


def test_migrations_matchModels(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_fromProcessesStartingTogether_migratesOnce(database_url: str) -> None:
    """The API and the worker may start together on a new database (as `make bench-earn` does)."""
    code = "import sys; from loyalty.db.session import upgrade; upgrade(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, database_url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=120)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], errors
    test_migrations_matchModels(database_url)


def test_upgrade_fromA01Database_keepsItsHistoryAsItWas(database_url, settings):
    """Writes finalized by 0.1 carry no block hash: the writer's reorg check must leave them be
    (it once took them all for reorged: earns back to pending, vouchers changed), and answers
    holding an API key in plaintext are forgotten."""
    from datetime import UTC, datetime

    from alembic import command
    from alembic.config import Config
    from eth_account import Account
    from fastapi.testclient import TestClient
    from sqlalchemy import text

    from loyalty.api.app import create_app
    from loyalty.chain.custody import Custody
    from loyalty.db.session import MIGRATIONS
    from loyalty.workers.outbox import OutboxWriter, drain

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    command.upgrade(config, "0001")
    issuer = Account.create()
    sealed = Custody(settings.master_key).seal(issuer)
    engine = create_engine(database_url)
    rows = [
        ("INSERT INTO partners (id, name, api_key_hash, issuer_address, issuer_key_sealed, issue_budget_points, "
         "budget_points, pending_points, next_ref, created_at) VALUES (1, 'Old', 'h', :issuer, :sealed, 100, 90, 0, 3, "
         "'2026-01-01')", {"issuer": issuer.address, "sealed": sealed}),
        ("INSERT INTO members (id, external_id, wallet_address, custodial, created_at) "
         "VALUES (1, 'm', :wallet, false, '2026-01-01')", {"wallet": Account.create().address}),
        ("INSERT INTO rewards (id, partner_id, name, description, cost_points, stock, active, created_at) "
         "VALUES (1, 1, 'Mug', '', 10, 5, true, '2026-01-01')", {}),
        ("INSERT INTO chain_writes (id, partner_id, kind, ref, nonce, tx_hash, raw_tx, status, block_number, created_at) "
         "VALUES (1, 1, 'earn_batch', 1, 0, '0x01', '\\x00', 'confirmed', 1, '2026-01-01'), "
         "(2, 1, 'redeem', 2, 1, '0x02', '\\x00', 'confirmed', 1, '2026-01-01')", {}),
        ("INSERT INTO earns (id, partner_id, member_id, amount_points, reason, status, write_id, created_at) "
         "VALUES (1, 1, 1, 20, '', 'confirmed', 1, '2026-01-01')", {}),
        ("INSERT INTO redemptions (id, partner_id, member_id, reward_id, amount_points, ref, nonce, deadline, "
         "signature, status, voucher_code, write_id, created_at) VALUES (1, 1, 1, 1, 10, 2, 0, 1, '\\x00', 'posted', "
         "'VOUCHER1', 2, '2026-01-01')", {}),
        ("INSERT INTO idempotency_records (principal, key, request_hash, status_code, response_body, created_at) "
         "VALUES ('admin', 'p', 'x', 201, '{\"id\": 1, \"api_key\": \"ptn_secret\"}', :now), "
         "('partner:1', 'e', 'y', 202, '{\"id\": 1}', :now)", {"now": datetime.now(UTC).replace(tzinfo=None)}),
    ]  # fmt: skip
    with engine.begin() as connection:
        for sql, params in rows:
            connection.execute(text(sql), params)
    engine.dispose()

    with TestClient(create_app(settings, run_outbox=False)) as client:
        writer = OutboxWriter(client.app.state.runtime)
        try:
            drain(writer)
        finally:
            writer.close()
        with client.app.state.runtime.sessions() as session:
            assert session.execute(text("SELECT status FROM earns")).scalar() == "confirmed"
            assert session.execute(text("SELECT status, voucher_code FROM redemptions")).one() == ("posted", "VOUCHER1")
            assert session.execute(text("SELECT pending_points FROM partners")).scalar() == 0
            assert session.execute(text("SELECT key FROM idempotency_records")).scalars().all() == ["e"]
        # 0.3: the member is linked to the partner that earned to it, so the partner still sees it
        assert session.execute(text("SELECT member_id, partner_id, source FROM member_links")).all() == [
            (1, 1, "enrolment")
        ]
        assert (
            client.get("/v1/members/1", headers={"Authorization": "Bearer " + _partner_key(client)}).status_code == 200
        )


def _partner_key(client) -> str:
    """A fresh key for the 0.1 partner (its old key's hash is not a real key's)."""
    response = client.post(
        "/v1/partners/1/key-rotations", headers={"Authorization": "Bearer adm_test", "Idempotency-Key": "rotate"}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["api_key"])


def _alembic(database_url: str):
    from alembic.config import Config

    from loyalty.db.session import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def test_upgradeTo03_linksInUtcWhateverTheSessionTimeZone(database_url, monkeypatch):
    """The links 0003 makes for pre-0.3 members are stamped in UTC, as every other time is, even
    when the database session's time zone is far from it (PGTZ sets it on PostgreSQL)."""
    from datetime import UTC, datetime, timedelta

    from alembic import command
    from sqlalchemy import text

    monkeypatch.setenv("PGTZ", "Pacific/Kiritimati")  # UTC+14
    config = _alembic(database_url)
    command.upgrade(config, "0002")
    engine = create_engine(database_url)
    with engine.begin() as connection:
        for sql in (
            "INSERT INTO partners (id, name, api_key_hash, issuer_address, issuer_key_sealed, issue_budget_points, "
            "budget_points, pending_points, next_ref, created_at) VALUES (1, 'Old', 'h', '0x01', '\\x00', 100, 90, 0, "
            "3, '2026-01-01')",
            "INSERT INTO members (id, external_id, wallet_address, custodial, created_at) "
            "VALUES (1, 'm', '0x02', false, '2026-01-01')",
            "INSERT INTO earns (id, partner_id, member_id, amount_points, reason, status, created_at) "
            "VALUES (1, 1, 1, 20, '', 'pending', '2026-01-01')",
        ):
            connection.execute(text(sql))
    command.upgrade(config, "head")
    with engine.connect() as connection:
        stamped = connection.execute(text("SELECT created_at FROM member_links")).scalar_one()
    engine.dispose()
    stamped = stamped if isinstance(stamped, datetime) else datetime.fromisoformat(stamped)
    assert abs(stamped.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=5), stamped


def test_downgradeFrom03_dropsRedemptionsThatNeverHeldAnything(database_url):
    """0.2 knows no redemption awaiting its member (nor declined): they held nothing and had no
    consent, so a downgrade forgets them; the others stay as they were."""
    from alembic import command
    from sqlalchemy import text

    config = _alembic(database_url)
    command.upgrade(config, "head")
    engine = create_engine(database_url)
    with engine.begin() as connection:
        for sql in (
            "INSERT INTO partners (id, name, api_key_hash, issuer_address, issuer_key_sealed, issue_budget_points, "
            "budget_points, pending_points, next_ref, created_at) VALUES (1, 'P', 'h', '0x01', '\\x00', 100, 90, 0, 3, "
            "'2026-01-01')",
            "INSERT INTO members (id, external_id, wallet_address, custodial, created_at) "
            "VALUES (1, 'm', '0x02', true, '2026-01-01')",
            "INSERT INTO rewards (id, partner_id, name, description, cost_points, stock, active, created_at) "
            "VALUES (1, 1, 'Mug', '', 10, 5, true, '2026-01-01')",
            "INSERT INTO redemptions (id, partner_id, member_id, reward_id, amount_points, ref, nonce, deadline, "
            "signature, status, created_at) VALUES (1, 1, 1, 1, 10, 2, 0, 1, '\\x00', 'posted', '2026-01-01'), "
            "(2, 1, 1, 1, 10, NULL, NULL, NULL, NULL, 'awaiting_member', '2026-01-02'), "
            "(3, 1, 1, 1, 10, NULL, NULL, NULL, NULL, 'declined', '2026-01-03')",
        ):
            connection.execute(text(sql))
    engine.dispose()

    command.downgrade(config, "0002")

    engine = create_engine(database_url)
    with engine.connect() as connection:
        left = connection.execute(text("SELECT id, status FROM redemptions")).all()
    engine.dispose()
    assert left == [(1, "posted")]
