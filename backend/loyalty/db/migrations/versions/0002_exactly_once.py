"""exactly once: the chain binding, the writer's lease, operator writes and dropped writes in
the outbox, sealed idempotency records, used consents, expiry sweeps

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:51:33.636842
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# 0001 left chain_writes' unique constraints unnamed: SQLite reflects them without a name, so
# batch mode names them by this convention to drop them; PostgreSQL named them itself.
_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def upgrade() -> None:
    op.create_table(
        "chain_binding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("token_address", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "expiry_sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("expired_before", sa.BigInteger(), nullable=False),
        sa.Column("members_checked", sa.Integer(), nullable=False),
        sa.Column("members_swept", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "writer_leases",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("chain_head", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )

    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("chain_writes", naming_convention=_SQLITE_NAMES if sqlite else None) as batch_op:
        batch_op.add_column(sa.Column("sender", sa.String(length=42), nullable=True))
        batch_op.add_column(sa.Column("block_hash", sa.String(length=66), nullable=True))
        batch_op.add_column(sa.Column("mined_at", sa.BigInteger(), nullable=True))
        batch_op.alter_column("partner_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.alter_column("ref", existing_type=sa.BIGINT(), nullable=True)
        for columns in (("partner_id", "nonce"), ("partner_id", "ref")):
            name = f"uq_chain_writes_{'_'.join(columns)}" if sqlite else f"chain_writes_{'_'.join(columns)}_key"
            batch_op.drop_constraint(name, type_="unique")
    # Every write so far was sent by its partner's issuer account.
    op.execute(
        "UPDATE chain_writes SET sender = (SELECT issuer_address FROM partners WHERE partners.id = chain_writes.partner_id)"
    )
    with op.batch_alter_table("chain_writes") as batch_op:
        batch_op.alter_column("sender", existing_type=sa.String(length=42), nullable=False)
        batch_op.create_index(batch_op.f("ix_chain_writes_partner_id"), ["partner_id"], unique=False)
        batch_op.create_index("ix_chain_writes_status", ["status"], unique=False)
        batch_op.create_index(
            "uq_chain_writes_sender_nonce_live",
            ["sender", "nonce"],
            unique=True,
            sqlite_where=sa.text("status != 'dropped' AND kind != 'cancel'"),
            postgresql_where=sa.text("status != 'dropped' AND kind != 'cancel'"),
        )

    with op.batch_alter_table("consent_quotes") as batch_op:
        batch_op.add_column(sa.Column("redemption_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_consent_quotes_redemption_id", "redemptions", ["redemption_id"], ["id"])

    with op.batch_alter_table("earns") as batch_op:
        batch_op.add_column(sa.Column("batch_limit", sa.Integer(), nullable=True))

    with op.batch_alter_table("idempotency_records") as batch_op:
        batch_op.add_column(sa.Column("sealed", sa.Boolean(), server_default=sa.text("false"), nullable=False))
        batch_op.create_index(batch_op.f("ix_idempotency_records_created_at"), ["created_at"], unique=False)
    # Answers that hold an API key were kept in plaintext: forget them (the key cannot be sealed
    # here, without the master key; a retry of those requests now answers partner_exists).
    op.execute("DELETE FROM idempotency_records WHERE response_body LIKE '%\"api_key\"%'")

    with op.batch_alter_table("partners") as batch_op:
        batch_op.add_column(sa.Column("provisioned_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("provision_error", sa.Text(), nullable=True))
    # Partners created before this revision were set up on-chain by the API as they were created.
    op.execute("UPDATE partners SET provisioned_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("partners") as batch_op:
        batch_op.drop_column("provision_error")
        batch_op.drop_column("provisioned_at")

    with op.batch_alter_table("idempotency_records") as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_records_created_at"))
        batch_op.drop_column("sealed")

    with op.batch_alter_table("earns") as batch_op:
        batch_op.drop_column("batch_limit")

    with op.batch_alter_table("consent_quotes") as batch_op:
        batch_op.drop_constraint("fk_consent_quotes_redemption_id", type_="foreignkey")
        batch_op.drop_column("redemption_id")

    op.execute("DELETE FROM chain_writes WHERE partner_id IS NULL")
    with op.batch_alter_table("chain_writes") as batch_op:
        batch_op.drop_index("uq_chain_writes_sender_nonce_live")
        batch_op.drop_index("ix_chain_writes_status")
        batch_op.drop_index(batch_op.f("ix_chain_writes_partner_id"))
        batch_op.alter_column("ref", existing_type=sa.BIGINT(), nullable=False)
        batch_op.alter_column("partner_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.create_unique_constraint("uq_chain_writes_partner_id_nonce", ["partner_id", "nonce"])
        batch_op.create_unique_constraint("uq_chain_writes_partner_id_ref", ["partner_id", "ref"])
        batch_op.drop_column("mined_at")
        batch_op.drop_column("block_hash")
        batch_op.drop_column("sender")

    op.drop_table("writer_leases")
    op.drop_table("expiry_sweeps")
    op.drop_table("chain_binding")
