"""The Alembic migrations build exactly the schema the models describe, on each database."""

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from loyalty.db.models import Base
from loyalty.db.session import upgrade


def test_migrations_matchModels(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_fromProcessesStartingTogether_migratesOnce(database_url: str) -> None:
    """The API and the worker may start together on a new database (as `make bench-earn` does)."""
    code = "import sys; from loyalty.db.session import upgrade; upgrade(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, database_url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=120)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], errors
    test_migrations_matchModels(database_url)
