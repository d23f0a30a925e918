"""one row per submission, delivery bookkeeping on stages, guessed dates kept apart

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 08:00:00

- batch_articles: a surrogate key, so one batch can hold several submissions of the same
  content, each with its own url, title, published date and origin;
- stages: `runs` (every start), `claim` (the delivery running it) and `sent_at` (when a
  message was last sent), which the recovery loop and `requeue` read;
- articles: `guessed_published`, the date the clean stage found in the text, kept apart
  from the date the submitter gave.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = sqlmodel.sql.sqltypes.AutoString
DATETIME = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "batch_submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("external_id", TEXT(), nullable=True),
        sa.Column("source", TEXT(), nullable=True),
        sa.Column("url", TEXT(), nullable=True),
        sa.Column("title", TEXT(), nullable=True),
        sa.Column("published", TEXT(), nullable=True),
        sa.Column("origin", TEXT(), nullable=True),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"]),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    # Earlier submissions keep the metadata the article row holds for them.
    op.execute(
        "INSERT INTO batch_submissions "
        "(batch_id, article_id, external_id, source, url, title, published) "
        "SELECT m.batch_id, m.article_id, m.external_id, m.source, a.url, a.given_title, "
        "a.published FROM batch_articles m JOIN articles a ON a.id = m.article_id "
        "ORDER BY m.batch_id, m.article_id"
    )
    op.drop_table("batch_articles")
    op.rename_table("batch_submissions", "batch_articles")
    with op.batch_alter_table("batch_articles") as batch_op:
        batch_op.create_index("ix_batch_articles_article_id", ["article_id"], unique=False)
        batch_op.create_index("ix_batch_articles_batch_id", ["batch_id"], unique=False)

    with op.batch_alter_table("stages") as batch_op:
        batch_op.add_column(sa.Column("runs", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("claim", TEXT(length=80), nullable=True))
        batch_op.add_column(
            sa.Column("sent_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.create_index("ix_stages_status", ["status"], unique=False)

    with op.batch_alter_table("articles") as batch_op:
        batch_op.add_column(sa.Column("guessed_published", TEXT(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("articles") as batch_op:
        batch_op.drop_column("guessed_published")
    with op.batch_alter_table("stages") as batch_op:
        batch_op.drop_index("ix_stages_status")
        batch_op.drop_column("sent_at")
        batch_op.drop_column("claim")
        batch_op.drop_column("runs")
    op.create_table(
        "batch_members",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("external_id", TEXT(), nullable=True),
        sa.Column("source", TEXT(), nullable=True),
        sa.ForeignKeyConstraint(["article_id"], ["articles.id"]),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"]),
        sa.PrimaryKeyConstraint("batch_id", "article_id"),
    )
    op.execute(
        "INSERT INTO batch_members (batch_id, article_id, external_id, source) "
        "SELECT batch_id, article_id, MIN(external_id), MIN(source) FROM batch_articles "
        "GROUP BY batch_id, article_id"
    )
    op.drop_table("batch_articles")
    op.rename_table("batch_members", "batch_articles")
    with op.batch_alter_table("batch_articles") as batch_op:
        batch_op.create_index("ix_batch_articles_article_id", ["article_id"], unique=False)
