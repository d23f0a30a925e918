"""a database identity, which every message names and every worker checks

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:10:00

- database_identity: one row, a random id given when the schema is made (or this
  revision is applied). Producers put it in every message; a worker whose own database
  has another one (another NEWSFLOW_DATABASE_URL, a SQLite file replaced under it)
  refuses the message back to the queue instead of acknowledging ids it does not know.
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "database_identity",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": str(uuid.uuid4())}])


def downgrade() -> None:
    op.drop_table("database_identity")
