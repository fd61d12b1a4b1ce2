"""The second tier: supervising agencies' decisions per unit (核轉 / 退回) and the digests sent to them.

Ledgers made by a build of the second tier before migrations may have them already.

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())  # a ledger of an unreleased build may have them
    if "unit_signoffs" not in existing:
        _unit_signoffs()
    if "digests" not in existing:
        _digests()


def _unit_signoffs() -> None:
    op.create_table(
        "unit_signoffs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("collection", sa.String, nullable=False, index=True),
        sa.Column("round", sa.String, nullable=False),
        sa.Column("supervisor", sa.String, nullable=False),
        sa.Column("agency", sa.String, nullable=False),
        sa.Column("receipt", sa.String, nullable=False),
        sa.Column("decision", sa.String, nullable=False),
        sa.Column("reason", sa.String),
        sa.Column("by", sa.String, nullable=False),
        sa.Column("source", sa.String, nullable=False, index=True),
        sa.Column("at", sa.String, nullable=False),
    )


def _digests() -> None:
    op.create_table(
        "digests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("collection", sa.String, nullable=False),
        sa.Column("round", sa.String, nullable=False),
        sa.Column("supervisor", sa.String, nullable=False),
        sa.Column("snapshot", sa.String, nullable=False),
        sa.Column("sent_at", sa.String, nullable=False),
        sa.Column("outgoing_id", sa.Integer),
    )


def downgrade() -> None:
    op.drop_table("digests")
    op.drop_table("unit_signoffs")
