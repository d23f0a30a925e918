"""kept counts and indexes, so every read is flat in the number of stored articles

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:00:00

- batch_articles gains `status` (its content's, kept with every stage row change) and
  `finished_at`, indexed with the batch and the id: a listing filtered by status or batch
  reads only what it returns, and a batch's rate reads only what finished lately;
- counts: per batch (0 for all), submissions per status and contents per language;
- entity_counts: per batch (0 for all), each entity's submissions, contents, mentions
  and salience, indexed in the order the top entities are read;
- entity_keys: the casefolded names each article's entities answer to, for the entity
  filter (it scanned `lower(text)` over every mention);
- stages: one index on (status, updated_at) instead of two, for the latest failures and
  the quiet rows.

The counts are filled from the stored data (newsflow.tallies.recount), a page of
contents at a time: about a minute per 100,000 stored articles.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op
from sqlmodel import Session

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("batch_articles") as batch_op:
        batch_op.add_column(
            sa.Column("status", TEXT(length=16), nullable=False, server_default="queued")
        )
        batch_op.add_column(sa.Column("finished_at", sa.DateTime(), nullable=True))
    op.create_index("ix_batch_articles_status", "batch_articles", ["status", "id"])
    op.create_index(
        "ix_batch_articles_batch_status", "batch_articles", ["batch_id", "status", "id"]
    )
    op.create_index(
        "ix_batch_articles_batch_finished", "batch_articles", ["batch_id", "finished_at"]
    )
    op.create_table(
        "counts",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("kind", TEXT(length=16), nullable=False),
        sa.Column("key", TEXT(length=32), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "kind", "key"),
    )
    op.create_table(
        "entity_counts",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("name", TEXT(), nullable=False),
        sa.Column("label", TEXT(length=16), nullable=False),
        sa.Column("articles", sa.Integer(), nullable=False),
        sa.Column("contents", sa.Integer(), nullable=False),
        sa.Column("mentions", sa.Integer(), nullable=False),
        sa.Column("salience", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "name", "label"),
    )
    op.create_index("ix_entity_counts_top", "entity_counts", ["batch_id", "articles", "mentions"])
    op.create_index(
        "ix_entity_counts_label_top",
        "entity_counts",
        ["batch_id", "label", "articles", "mentions"],
    )
    op.create_table(
        "entity_keys",
        sa.Column("key", TEXT(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"]),
        sa.PrimaryKeyConstraint("key", "article_id"),
    )
    op.create_index("ix_entity_keys_article_id", "entity_keys", ["article_id"])
    op.drop_index("ix_stages_status", table_name="stages")
    op.drop_index("ix_stages_updated_at", table_name="stages")
    op.create_index("ix_stages_status_updated", "stages", ["status", "updated_at"])

    from newsflow import tallies

    with Session(bind=op.get_bind()) as session:
        tallies.recount(session)
        session.flush()


def downgrade() -> None:
    op.drop_index("ix_stages_status_updated", table_name="stages")
    op.create_index("ix_stages_updated_at", "stages", ["updated_at"])
    op.create_index("ix_stages_status", "stages", ["status"])
    op.drop_table("entity_keys")
    op.drop_table("entity_counts")
    op.drop_table("counts")
    for index in ("status", "batch_status", "batch_finished"):
        op.drop_index(f"ix_batch_articles_{index}", table_name="batch_articles")
    # In place (SQLite has DROP COLUMN since 3.35): a batch copy of batch_articles would
    # need every foreign key to it dropped first.
    op.execute("ALTER TABLE batch_articles DROP COLUMN finished_at")
    op.execute("ALTER TABLE batch_articles DROP COLUMN status")
