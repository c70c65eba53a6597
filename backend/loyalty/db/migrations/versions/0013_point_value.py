"""a program's point value (minor units of its currency per so many points): the metrics'
liability in money and deferred revenue

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("programs") as batch_op:
        batch_op.add_column(sa.Column("point_value_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("point_value_points", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("programs") as batch_op:
        batch_op.drop_column("point_value_points")
        batch_op.drop_column("point_value_minor")
