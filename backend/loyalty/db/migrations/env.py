"""Alembic environment: migrations run from `loyalty.db.session.upgrade` (or the alembic CLI)."""

from alembic import context
from sqlalchemy import create_engine, text

from loyalty.db.models import Base

config = context.config


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":  # one migrator at a time (API and worker may start together)
                connection.execute(text("SELECT pg_advisory_xact_lock(7426111)"))
            context.run_migrations()
    engine.dispose()


run_migrations_online()
