"""sign-in throttles per external id and client address, for ids that exist or not

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 01:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_throttles",
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("external_id", "source"),
    )
    op.create_index(op.f("ix_sign_in_throttles_updated_at"), "sign_in_throttles", ["updated_at"], unique=False)
    # The members' own counters go: a throttle kept only for members that exist tells who does.
    with op.batch_alter_table("members") as batch_op:
        batch_op.drop_column("sign_in_blocked_until")
        batch_op.drop_column("failed_sign_ins")


def downgrade() -> None:
    with op.batch_alter_table("members") as batch_op:
        batch_op.add_column(sa.Column("failed_sign_ins", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch_op.add_column(sa.Column("sign_in_blocked_until", sa.DateTime(), nullable=True))
    op.drop_index(op.f("ix_sign_in_throttles_updated_at"), table_name="sign_in_throttles")
    op.drop_table("sign_in_throttles")
