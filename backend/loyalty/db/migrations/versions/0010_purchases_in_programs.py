"""a purchase earns in one program (a brand issuing in several reports each order to the
program it earns in): tiers count the spend and points of their own program only

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 01:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("purchases") as batch_op:
        batch_op.add_column(sa.Column("program_id", sa.Integer(), server_default="1", nullable=False))
        batch_op.create_foreign_key("fk_purchases_program_id", "programs", ["program_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("purchases") as batch_op:
        batch_op.drop_constraint("fk_purchases_program_id", type_="foreignkey")
        batch_op.drop_column("program_id")
