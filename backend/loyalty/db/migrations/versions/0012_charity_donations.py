"""charity donations: a charity's published rate, each donation (a redemption of the charity's
donation reward, whose stock is unlimited) with the money it is worth, and the amount a
donation's consent quote burns

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 07:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "charities",
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partners.id"), primary_key=True),
        sa.Column("cash_minor", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "donations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("redemption_id", sa.Integer(), sa.ForeignKey("redemptions.id"), nullable=False, unique=True),
        sa.Column("charity_id", sa.Integer(), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("program_id", sa.Integer(), sa.ForeignKey("programs.id"), nullable=False),
        sa.Column("member_id", sa.Integer(), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("relayed_by", sa.Integer(), sa.ForeignKey("partners.id"), nullable=True),
        sa.Column("amount_points", sa.BigInteger(), nullable=False),
        sa.Column("cash_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate_cash_minor", sa.BigInteger(), nullable=False),
        sa.Column("rate_points", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_donations_charity_id", "donations", ["charity_id"])
    op.create_index("ix_donations_member_id", "donations", ["member_id"])
    with op.batch_alter_table("rewards") as batch_op:
        batch_op.alter_column("stock", existing_type=sa.BigInteger(), nullable=True)
    with op.batch_alter_table("consent_quotes") as batch_op:
        batch_op.add_column(sa.Column("amount_points", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_quotes") as batch_op:
        batch_op.drop_column("amount_points")
    with op.batch_alter_table("rewards") as batch_op:
        batch_op.alter_column("stock", existing_type=sa.BigInteger(), nullable=False)
    op.drop_index("ix_donations_member_id", table_name="donations")
    op.drop_index("ix_donations_charity_id", table_name="donations")
    op.drop_table("donations")
    op.drop_table("charities")
