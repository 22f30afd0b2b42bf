"""Alembic environment: migrates the state database named by SCHEMABOT_DATABASE_URL."""

from __future__ import annotations

from alembic import context

from schemabot.settings import get_settings
from schemabot.storage import charset  # noqa: F401  (CREATE TABLE ... DEFAULT CHARSET=utf8mb4)
from schemabot.storage.database import make_engine
from schemabot.storage.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=url.startswith("sqlite")
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=url.startswith("sqlite")
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
