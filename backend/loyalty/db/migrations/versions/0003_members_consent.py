"""members consent: partner links, member credentials and tokens, sign-in nonces, redemptions
that await the member, deactivated partners, budget grants

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 22:40:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_links",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
        sa.PrimaryKeyConstraint("member_id", "partner_id"),
    )
    op.create_index("ix_member_links_partner_member", "member_links", ["partner_id", "member_id"], unique=False)
    # A member's history is read a page at a time in (created_at, id) order.
    for table in ("earns", "redemptions"):
        op.drop_index(f"ix_{table}_member_id", table_name=table)
        op.create_index(f"ix_{table}_member_history", table, ["member_id", "created_at", "id"], unique=False)
    op.create_table(
        "member_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("max_points", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(op.f("ix_member_tokens_member_id"), "member_tokens", ["member_id"], unique=False)
    op.create_table(
        "sign_in_nonces",
        sa.Column("nonce", sa.String(length=40), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("nonce"),
    )
    with op.batch_alter_table("members") as batch_op:
        batch_op.add_column(sa.Column("smart_wallet", sa.Boolean(), server_default=sa.text("false"), nullable=False))
        batch_op.add_column(sa.Column("passphrase_hash", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("failed_sign_ins", sa.Integer(), server_default=sa.text("0"), nullable=False))
        batch_op.add_column(sa.Column("sign_in_blocked_until", sa.DateTime(), nullable=True))
    with op.batch_alter_table("partners") as batch_op:
        batch_op.add_column(sa.Column("deactivated_at", sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("budget_to_grant_points", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
    with op.batch_alter_table("chain_writes") as batch_op:
        batch_op.add_column(sa.Column("amount_points", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("redemptions") as batch_op:
        batch_op.alter_column("ref", existing_type=sa.BigInteger(), nullable=True)
        batch_op.alter_column("nonce", existing_type=sa.BigInteger(), nullable=True)
        batch_op.alter_column("deadline", existing_type=sa.BigInteger(), nullable=True)
        batch_op.alter_column("signature", existing_type=sa.LargeBinary(), nullable=True)
    # Members enrolled before 0.3 were enrolled by no partner in particular: link each to every
    # partner that earned to it or redeemed for it, so partners keep seeing their own members
    # (the operator links the others: POST /v1/members/{id}/links). Stamped in UTC as every time
    # is (CURRENT_TIMESTAMP is in the session's zone on PostgreSQL).
    now = datetime.now(UTC).replace(tzinfo=None)
    for table in ("earns", "redemptions"):
        op.execute(
            sa.text(
                f"INSERT INTO member_links (member_id, partner_id, source, created_at) "
                f"SELECT DISTINCT member_id, partner_id, 'enrolment', :now FROM {table} t "
                f"WHERE NOT EXISTS (SELECT 1 FROM member_links l WHERE l.member_id = t.member_id "
                f"AND l.partner_id = t.partner_id)"
            ).bindparams(now=now)
        )


def downgrade() -> None:
    """Back to 0.2, which knows neither redemptions awaiting their member nor declined ones (they
    held nothing and carry no consent: forgotten), nor budget grants (kept, as the `set_budget`
    writes they are on-chain). A custodial redemption reserved but not yet signed cannot go back:
    stop the API, let the writer send what it holds, then downgrade."""
    unsigned = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM redemptions WHERE signature IS NULL AND status = 'reserved'")
    )
    if unsigned:
        raise RuntimeError(
            f"{unsigned} reserved redemption(s) are not signed yet: run the writer until none is, then downgrade"
        )
    op.execute("DELETE FROM redemptions WHERE status IN ('awaiting_member', 'declined')")
    op.execute("UPDATE chain_writes SET kind = 'set_budget' WHERE kind = 'grant_budget'")
    for table in ("earns", "redemptions"):
        op.drop_index(f"ix_{table}_member_history", table_name=table)
        op.create_index(f"ix_{table}_member_id", table, ["member_id"], unique=False)
    with op.batch_alter_table("redemptions") as batch_op:
        batch_op.alter_column("signature", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.alter_column("deadline", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("nonce", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("ref", existing_type=sa.BigInteger(), nullable=False)
    with op.batch_alter_table("chain_writes") as batch_op:
        batch_op.drop_column("amount_points")
    with op.batch_alter_table("partners") as batch_op:
        batch_op.drop_column("budget_to_grant_points")
        batch_op.drop_column("deactivated_at")
    with op.batch_alter_table("members") as batch_op:
        batch_op.drop_column("sign_in_blocked_until")
        batch_op.drop_column("failed_sign_ins")
        batch_op.drop_column("passphrase_hash")
        batch_op.drop_column("smart_wallet")
    op.drop_table("sign_in_nonces")
    op.drop_index(op.f("ix_member_tokens_member_id"), table_name="member_tokens")
    op.drop_table("member_tokens")
    op.drop_index("ix_member_links_partner_member", table_name="member_links")
    op.drop_table("member_links")
