"""the program engine, second part: campaigns issuing from their own accounts, custom events,
member segments, referrals, tiers paid in points; awards say what earned them, when, and which
earn carried them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 11:00:00
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

REFERRAL_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's: no I, L, O, U


def upgrade() -> None:
    with op.batch_alter_table("partners") as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=20), server_default="brand", nullable=False))
        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("budget_to_move_points", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.create_foreign_key("fk_partners_owner_id", "partners", ["owner_id"], ["id"])
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("issuer_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("budget_points", sa.BigInteger(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["issuer_id"], ["partners.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer_id"),
    )
    op.create_index("ix_campaigns_partner_id", "campaigns", ["partner_id"], unique=False)
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("properties", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_events_member_id", "events", ["member_id"], unique=False)
    op.create_index("ix_events_partner_event", "events", ["partner_id", "event_id"], unique=True)
    op.create_table(
        "member_segments",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
        sa.PrimaryKeyConstraint("member_id", "partner_id", "tag"),
    )
    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referrer_id", sa.Integer(), nullable=False),
        sa.Column("friend_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("purchase_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("rewarded_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["friend_id"], ["members.id"]),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"]),
        sa.ForeignKeyConstraint(["purchase_id"], ["purchases.id"]),
        sa.ForeignKeyConstraint(["referrer_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("friend_id"),
    )
    op.create_index("ix_referrals_referrer", "referrals", ["referrer_id", "created_at"], unique=False)

    # Awards say when their activity happened (limits count by it), what else may earn them
    # (an event, a referral, a campaign) and which earn minted them.
    with op.batch_alter_table("awards") as batch_op:
        batch_op.add_column(sa.Column("event_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("referral_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("campaign_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("earn_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("occurred_at", sa.DateTime(), nullable=True))
        batch_op.alter_column("purchase_id", existing_type=sa.INTEGER(), nullable=True)
    op.execute(
        "UPDATE awards SET occurred_at = (SELECT purchases.occurred_at FROM purchases WHERE purchases.id = awards.purchase_id)"
    )
    op.execute(
        "UPDATE awards SET earn_id = (SELECT purchases.earn_id FROM purchases WHERE purchases.id = awards.purchase_id)"
    )
    with op.batch_alter_table("awards") as batch_op:
        batch_op.alter_column("occurred_at", existing_type=sa.DateTime(), nullable=False)
        batch_op.drop_index("ix_awards_member_rule")
        batch_op.create_index("ix_awards_member_rule", ["member_id", "rule_id", "occurred_at"], unique=False)
        batch_op.create_index("ix_awards_member_campaign", ["member_id", "campaign_id", "occurred_at"], unique=False)
        batch_op.create_index("ix_awards_event_id", ["event_id"], unique=False)
        batch_op.create_index("ix_awards_referral_id", ["referral_id"], unique=False)
        batch_op.create_foreign_key("fk_awards_referral_id", "referrals", ["referral_id"], ["id"])
        batch_op.create_foreign_key("fk_awards_earn_id", "earns", ["earn_id"], ["id"])
        batch_op.create_foreign_key("fk_awards_event_id", "events", ["event_id"], ["id"])
        batch_op.create_foreign_key("fk_awards_campaign_id", "campaigns", ["campaign_id"], ["id"])
    with op.batch_alter_table("debts") as batch_op:
        batch_op.alter_column("purchase_id", existing_type=sa.INTEGER(), nullable=True)
    with op.batch_alter_table("purchases") as batch_op:
        batch_op.add_column(sa.Column("facts", sa.Text(), nullable=True))
    with op.batch_alter_table("programs") as batch_op:
        batch_op.add_column(sa.Column("currency", sa.String(length=3), server_default="USD", nullable=False))
    if op.get_bind().dialect.name == "postgresql":  # 0005 inserted program 1 by its id: move the sequence past it
        op.execute("SELECT setval(pg_get_serial_sequence('programs', 'id'), (SELECT max(id) FROM programs))")

    # Every member gets a referral code to share (those enrolled from now on get one at enrolment).
    with op.batch_alter_table("members") as batch_op:
        batch_op.add_column(sa.Column("referral_code", sa.String(length=16), nullable=True))
        batch_op.create_unique_constraint("uq_members_referral_code", ["referral_code"])
    connection = op.get_bind()
    ids = [row[0] for row in connection.execute(sa.text("SELECT id FROM members WHERE referral_code IS NULL"))]
    codes: set[str] = set()
    while len(codes) < len(ids):
        codes.add("".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(8)))
    for member_id, code in zip(ids, sorted(codes), strict=True):
        connection.execute(
            sa.text("UPDATE members SET referral_code = :code WHERE id = :id").bindparams(code=code, id=member_id)
        )

    with op.batch_alter_table("rewards") as batch_op:
        batch_op.add_column(sa.Column("tier", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("tier_period_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("tier_subscriptions") as batch_op:
        batch_op.add_column(sa.Column("price_points", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("redemption_id", sa.Integer(), nullable=True))
        batch_op.alter_column("currency", existing_type=sa.VARCHAR(length=3), nullable=True)
        batch_op.alter_column("price_minor", existing_type=sa.BIGINT(), nullable=True)
        batch_op.create_unique_constraint("uq_tier_subscriptions_redemption_id", ["redemption_id"])
        batch_op.create_unique_constraint("uq_tier_subscriptions_payment_ref", ["payment_ref"])
        batch_op.create_foreign_key("fk_tier_subscriptions_redemption_id", "redemptions", ["redemption_id"], ["id"])


def downgrade() -> None:
    # Refused while anything 0.3's first program engine cannot hold exists: its awards all came
    # from purchases, its tiers were all paid in money, its issuers were all brands.
    connection = op.get_bind()
    for what, query in (
        ("campaigns", "SELECT count(*) FROM campaigns"),
        ("events", "SELECT count(*) FROM events"),
        ("referrals", "SELECT count(*) FROM referrals"),
        ("tiers paid in points", "SELECT count(*) FROM tier_subscriptions WHERE redemption_id IS NOT NULL"),
    ):
        if connection.execute(sa.text(query)).scalar():
            raise RuntimeError(f"cannot downgrade below 0006: the database holds {what}")
    with op.batch_alter_table("tier_subscriptions") as batch_op:
        batch_op.drop_constraint("fk_tier_subscriptions_redemption_id", type_="foreignkey")
        batch_op.drop_constraint("uq_tier_subscriptions_payment_ref", type_="unique")
        batch_op.drop_constraint("uq_tier_subscriptions_redemption_id", type_="unique")
        batch_op.alter_column("price_minor", existing_type=sa.BIGINT(), nullable=False)
        batch_op.alter_column("currency", existing_type=sa.VARCHAR(length=3), nullable=False)
        batch_op.drop_column("redemption_id")
        batch_op.drop_column("price_points")
    with op.batch_alter_table("rewards") as batch_op:
        batch_op.drop_column("tier_period_days")
        batch_op.drop_column("tier")
    with op.batch_alter_table("members") as batch_op:
        batch_op.drop_constraint("uq_members_referral_code", type_="unique")
        batch_op.drop_column("referral_code")
    with op.batch_alter_table("purchases") as batch_op:
        batch_op.drop_column("facts")
    with op.batch_alter_table("programs") as batch_op:
        batch_op.drop_column("currency")
    with op.batch_alter_table("debts") as batch_op:
        batch_op.alter_column("purchase_id", existing_type=sa.INTEGER(), nullable=False)
    with op.batch_alter_table("awards") as batch_op:
        batch_op.drop_constraint("fk_awards_campaign_id", type_="foreignkey")
        batch_op.drop_constraint("fk_awards_event_id", type_="foreignkey")
        batch_op.drop_constraint("fk_awards_earn_id", type_="foreignkey")
        batch_op.drop_constraint("fk_awards_referral_id", type_="foreignkey")
        batch_op.drop_index("ix_awards_referral_id")
        batch_op.drop_index("ix_awards_event_id")
        batch_op.drop_index("ix_awards_member_campaign")
        batch_op.drop_index("ix_awards_member_rule")
        batch_op.create_index("ix_awards_member_rule", ["member_id", "rule_id", "created_at"], unique=False)
        batch_op.alter_column("purchase_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("occurred_at")
        batch_op.drop_column("earn_id")
        batch_op.drop_column("campaign_id")
        batch_op.drop_column("referral_id")
        batch_op.drop_column("event_id")
    op.drop_index("ix_referrals_referrer", table_name="referrals")
    op.drop_table("referrals")
    op.drop_table("member_segments")
    op.drop_index("ix_events_partner_event", table_name="events")
    op.drop_index("ix_events_member_id", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_campaigns_partner_id", table_name="campaigns")
    op.drop_table("campaigns")
    with op.batch_alter_table("partners") as batch_op:
        batch_op.drop_constraint("fk_partners_owner_id", type_="foreignkey")
        batch_op.drop_column("budget_to_move_points")
        batch_op.drop_column("owner_id")
        batch_op.drop_column("kind")
