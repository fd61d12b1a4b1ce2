"""Index outgoing mail by Message-ID: every delivery looks it up first (sent once only).

Ledgers of collect before migrations got this index when they next recorded outgoing mail, so it may exist.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("outgoing")}
    if "ix_outgoing_message_id" not in existing:
        op.create_index("ix_outgoing_message_id", "outgoing", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_outgoing_message_id", "outgoing")
