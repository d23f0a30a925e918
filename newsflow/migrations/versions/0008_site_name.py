"""articles.site: a web page's site name, the source of the records that name none

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:00:00

The clean stage took trafilatura's site name as the page's agency, whatever it was; it is
now the page's `site`, and an agency only when it is an agency's name. Pages cleaned
before keep their agency until `newsflow reprocess --stage clean` runs them again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("articles", sa.Column("site", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    # Not a batch (copy and move) on SQLite: that would drop the search index's triggers.
    op.execute("ALTER TABLE articles DROP COLUMN site")
