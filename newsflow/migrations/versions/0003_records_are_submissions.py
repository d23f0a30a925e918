"""records are submissions: found by the submitter's id; contents keep no submitter's fields

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:00:00

- batch_articles (one row per submission, already holding each submitter's id, url, title,
  date and source since 0002) is now what a record is: an index on `external_id` finds
  one by the submitter's own id;
- articles (one row per content) drop the first submitter's `external_id`, `source`, `url`
  and `published`, which every submission row holds already; `given_title` stays, since
  the clean stage reads it as the title of a text that has none.

No submission is touched: every record id the previous revision gave a reader that asked
by submission (export --batch) stays, and a record id once given is the submission's.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT = sqlmodel.sql.sqltypes.AutoString
FIRST_SUBMITTERS = ("external_id", "source", "url", "published")


def upgrade() -> None:
    with op.batch_alter_table("batch_articles") as batch_op:
        batch_op.create_index("ix_batch_articles_external_id", ["external_id"], unique=False)
    # ALTER TABLE ... DROP COLUMN in place (SQLite has it since 3.35): batch mode would copy
    # the table and drop the old one, which every stage table's foreign key refers to.
    for column in FIRST_SUBMITTERS:
        op.execute(f"ALTER TABLE articles DROP COLUMN {column}")


def downgrade() -> None:
    with op.batch_alter_table("articles") as batch_op:
        for column in FIRST_SUBMITTERS:
            batch_op.add_column(sa.Column(column, TEXT(), nullable=True))
    # The first submission of each content gives back what the article row held.
    op.execute(
        "UPDATE articles SET external_id = m.external_id, source = COALESCE(m.origin, m.source), "
        "url = m.url, published = m.published FROM batch_articles m WHERE m.id = "
        "(SELECT MIN(f.id) FROM batch_articles f WHERE f.article_id = articles.id)"
    )
    with op.batch_alter_table("batch_articles") as batch_op:
        batch_op.drop_index("ix_batch_articles_external_id")
