"""leaderboards: a brand's ranking by points earned per week or month (from the chain), each
period's close and the prizes it paid

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 08:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leaderboards",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("program_id", sa.Integer(), sa.ForeignKey("programs.id"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("period", sa.String(length=20), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("prizes", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_leaderboards_partner_id", "leaderboards", ["partner_id"])
    op.create_table(
        "leaderboard_closes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("leaderboard_id", sa.Integer(), sa.ForeignKey("leaderboards.id"), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("period_end", sa.DateTime(), nullable=False),
        sa.Column("to_block", sa.BigInteger(), nullable=False),
        sa.Column("ranked", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("leaderboard_id", "period_start", name="uq_leaderboard_closes_period"),
    )
    op.create_table(
        "leaderboard_prizes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("close_id", sa.Integer(), sa.ForeignKey("leaderboard_closes.id"), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("earn_id", sa.Integer(), sa.ForeignKey("earns.id"), nullable=True),
    )
    op.create_index("ix_leaderboard_prizes_close_id", "leaderboard_prizes", ["close_id"])


def downgrade() -> None:
    op.drop_index("ix_leaderboard_prizes_close_id", table_name="leaderboard_prizes")
    op.drop_table("leaderboard_prizes")
    op.drop_table("leaderboard_closes")
    op.drop_index("ix_leaderboards_partner_id", table_name="leaderboards")
    op.drop_table("leaderboards")
