"""challenges: a brand's goals for its members (a metric reaching a target in a window or each
week or month of it) and each member's completion per period

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "challenges",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("partner_id", sa.Integer(), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("program_id", sa.Integer(), sa.ForeignKey("programs.id"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=20), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=True),
        sa.Column("operator", sa.String(length=4), nullable=False),
        sa.Column("target", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=20), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("segment", sa.String(length=100), nullable=True),
        sa.Column("tiers", sa.Text(), nullable=True),
        sa.Column("reward_points", sa.BigInteger(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), sa.ForeignKey("campaigns.id"), nullable=True),
        sa.Column("badge", sa.String(length=100), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_challenges_partner_id", "challenges", ["partner_id"])
    op.create_table(
        "challenge_completions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("challenge_id", sa.Integer(), sa.ForeignKey("challenges.id"), nullable=False),
        sa.Column("member_id", sa.Integer(), sa.ForeignKey("members.id"), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("earn_id", sa.Integer(), sa.ForeignKey("earns.id"), nullable=True),
        sa.Column("badge", sa.String(length=100), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("challenge_id", "member_id", "period_start", name="uq_challenge_completions_period"),
    )
    op.create_index("ix_challenge_completions_member_id", "challenge_completions", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_challenge_completions_member_id", table_name="challenge_completions")
    op.drop_table("challenge_completions")
    op.drop_index("ix_challenges_partner_id", table_name="challenges")
    op.drop_table("challenges")
