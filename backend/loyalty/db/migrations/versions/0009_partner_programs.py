"""partners issue in several programs (an issuer account per program), rewards cost a
program's points, expired points are swept on every program's token, and a brand may sign
its agreements with a signer of its own

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 21:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("partners") as batch_op:
        batch_op.add_column(sa.Column("program_id", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("agreement_signer", sa.String(length=42), nullable=True))
        batch_op.create_foreign_key("fk_partners_program_id", "programs", ["program_id"], ["id"])
    with op.batch_alter_table("rewards") as batch_op:
        batch_op.add_column(sa.Column("program_id", sa.Integer(), server_default="1", nullable=False))
        batch_op.create_foreign_key("fk_rewards_program_id", "programs", ["program_id"], ["id"])
    with op.batch_alter_table("expiry_sweeps") as batch_op:
        batch_op.add_column(sa.Column("program_id", sa.Integer(), server_default="1", nullable=False))
        batch_op.create_foreign_key("fk_expiry_sweeps_program_id", "programs", ["program_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("expiry_sweeps") as batch_op:
        batch_op.drop_constraint("fk_expiry_sweeps_program_id", type_="foreignkey")
        batch_op.drop_column("program_id")
    with op.batch_alter_table("rewards") as batch_op:
        batch_op.drop_constraint("fk_rewards_program_id", type_="foreignkey")
        batch_op.drop_column("program_id")
    with op.batch_alter_table("partners") as batch_op:
        batch_op.drop_constraint("fk_partners_program_id", type_="foreignkey")
        batch_op.drop_column("agreement_signer")
        batch_op.drop_column("program_id")
