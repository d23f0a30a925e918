"""Alembic environment: runs migrations on the engine newsflow.db builds for the given URL."""

from alembic import context
from sqlmodel import SQLModel

from newsflow import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from newsflow.db import get_engine

config = context.config
url = str(config.attributes.get("url") or config.get_main_option("sqlalchemy.url"))

with get_engine(url).connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
