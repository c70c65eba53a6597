"""programs on the chain: each program is a LoyaltyPoints deployment (deployed by the service,
or an existing one registered), and every chain write names the program it went to; rate
agreements between brands for the exchange

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("programs") as batch_op:
        # Program 1's token is the one the database is bound to (chain_binding): the service
        # fills it in when it starts.
        batch_op.add_column(sa.Column("token_address", sa.String(length=42), nullable=True))
        batch_op.add_column(sa.Column("symbol", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("epoch_length_s", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("validity_epochs", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("deployment_block", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("kind", sa.String(length=20), server_default="brand", nullable=False))
        batch_op.add_column(sa.Column("status", sa.String(length=20), server_default="active", nullable=False))
        batch_op.create_unique_constraint("uq_programs_token_address", ["token_address"])
    with op.batch_alter_table("chain_writes") as batch_op:
        batch_op.add_column(sa.Column("program_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_chain_writes_program_id", "programs", ["program_id"], ["id"])
    op.create_table(
        "agreements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.String(length=66), nullable=False),
        sa.Column("exchange_address", sa.String(length=42), nullable=False),
        sa.Column("source_program_id", sa.Integer(), nullable=False),
        sa.Column("target_program_id", sa.Integer(), nullable=False),
        sa.Column("payer_id", sa.Integer(), nullable=False),
        sa.Column("payee_id", sa.Integer(), nullable=False),
        sa.Column("proposed_by", sa.Integer(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("payer_signature", sa.String(length=200), nullable=True),
        sa.Column("payee_signature", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["payee_id"], ["partners.id"]),
        sa.ForeignKeyConstraint(["payer_id"], ["partners.id"]),
        sa.ForeignKeyConstraint(["proposed_by"], ["partners.id"]),
        sa.ForeignKeyConstraint(["revoked_by"], ["partners.id"]),
        sa.ForeignKeyConstraint(["source_program_id"], ["programs.id"]),
        sa.ForeignKeyConstraint(["target_program_id"], ["programs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agreement_id"),
    )
    op.create_index("ix_agreements_payer_id", "agreements", ["payer_id"], unique=False)
    op.create_index("ix_agreements_payee_id", "agreements", ["payee_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_agreements_payee_id", table_name="agreements")
    op.drop_index("ix_agreements_payer_id", table_name="agreements")
    op.drop_table("agreements")
    with op.batch_alter_table("chain_writes") as batch_op:
        batch_op.drop_constraint("fk_chain_writes_program_id", type_="foreignkey")
        batch_op.drop_column("program_id")
    with op.batch_alter_table("programs") as batch_op:
        batch_op.drop_constraint("uq_programs_token_address", type_="unique")
        for column in (
            "status",
            "kind",
            "deployment_block",
            "validity_epochs",
            "epoch_length_s",
            "symbol",
            "token_address",
        ):
            batch_op.drop_column(column)
