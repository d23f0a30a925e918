"""articles.search kept in the row, not out of line (PostgreSQL)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 21:40:00

Ranking a match reads its vector. An article's vector (~2 KB for 400 words) made its row
too long for the page, so PostgreSQL moved it out of line, and each rank looked it up in
the TOAST table: STORAGE MAIN keeps it in the row and moves the body out instead. 2,000
ranks took 25.6 -> 14 ms (a copy of 30,000 articles each way, warm). Rows written
before keep their layout until the table is rewritten (`VACUUM FULL articles`, which
locks it while it runs); SQLite has no such setting.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE articles ALTER COLUMN search SET STORAGE MAIN")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE articles ALTER COLUMN search SET STORAGE EXTENDED")
