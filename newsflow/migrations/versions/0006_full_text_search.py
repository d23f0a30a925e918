"""full-text search over title and clean body

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:30:00

- PostgreSQL: articles gain `search`, a tsvector computed by the database from the title
  (weight A) and the clean body (weight B) with the text search configuration of the
  article's language where PostgreSQL has one ('simple' otherwise), and a GIN index on it;
- SQLite: an FTS5 table over the same two columns, its content read from articles
  (nothing stored twice), kept by triggers on articles.

Adding the column computes it for every stored article: on PostgreSQL about a minute per
100,000 articles, and the table is rewritten.
"""

from collections.abc import Sequence

from alembic import op

from newsflow.search import SQLITE_TABLE, SQLITE_TRIGGERS, postgres_document

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER TABLE articles ADD COLUMN search tsvector "
            f"GENERATED ALWAYS AS ({postgres_document()}) STORED"
        )
        op.execute("CREATE INDEX ix_articles_search ON articles USING gin (search)")
        return
    op.execute(SQLITE_TABLE)
    for statement in SQLITE_TRIGGERS:
        op.execute(statement)
    op.execute("INSERT INTO article_search(article_search) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_articles_search")
        op.execute("ALTER TABLE articles DROP COLUMN search")
        return
    for name in ("ai", "ad", "au"):
        op.execute(f"DROP TRIGGER article_search_{name}")
    op.execute("DROP TABLE article_search")
