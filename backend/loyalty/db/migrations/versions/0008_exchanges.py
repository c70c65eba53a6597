"""members' exchanges between programs, the exchange's refs and incoming budget per program,
brands' settlement of closed periods, and a coalition's issue fee and redemption price

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("programs") as batch_op:
        batch_op.add_column(sa.Column("exchange_next_ref", sa.BigInteger(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("incoming_budget_points", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("incoming_to_grant_points", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("issue_fee_per_point", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("redemption_price_per_point", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.create_table(
        "exchanges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("source_program_id", sa.Integer(), nullable=False),
        sa.Column("target_program_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("amount_in", sa.BigInteger(), nullable=False),
        sa.Column("amount_out", sa.BigInteger(), nullable=False),
        sa.Column("ref", sa.BigInteger(), nullable=True),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("deadline", sa.BigInteger(), nullable=True),
        sa.Column("signature", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("write_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreements.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
        sa.ForeignKeyConstraint(["source_program_id"], ["programs.id"]),
        sa.ForeignKeyConstraint(["target_program_id"], ["programs.id"]),
        sa.ForeignKeyConstraint(["write_id"], ["chain_writes.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_exchanges_member_id", "exchanges", ["member_id"], unique=False)
    op.create_index("ix_exchanges_write_id", "exchanges", ["write_id"], unique=False)
    op.create_index("ix_exchanges_status", "exchanges", ["status", "agreement_id"], unique=False)
    op.create_table(
        "settlements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exchange_address", sa.String(length=42), nullable=False),
        sa.Column("period", sa.BigInteger(), nullable=False),
        sa.Column("payment_index", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("amount", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("write_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
        sa.ForeignKeyConstraint(["write_id"], ["chain_writes.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_settlements_partner_id", "settlements", ["partner_id"], unique=False)
    op.create_index("ix_settlements_status", "settlements", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_settlements_status", table_name="settlements")
    op.drop_index("ix_settlements_partner_id", table_name="settlements")
    op.drop_table("settlements")
    op.drop_index("ix_exchanges_status", table_name="exchanges")
    op.drop_index("ix_exchanges_write_id", table_name="exchanges")
    op.drop_index("ix_exchanges_member_id", table_name="exchanges")
    op.drop_table("exchanges")
    with op.batch_alter_table("programs") as batch_op:
        for column in (
            "redemption_price_per_point",
            "issue_fee_per_point",
            "incoming_to_grant_points",
            "incoming_budget_points",
            "exchange_next_ref",
        ):
            batch_op.drop_column(column)
