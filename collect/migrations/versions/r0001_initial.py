"""The ledger as collect made it before migrations existed (create_all), without the outgoing Message-ID index.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "template_versions",
        sa.Column("collection", sa.String, primary_key=True),
        sa.Column("version", sa.String, primary_key=True),
        sa.Column("created_at", sa.String, nullable=False),
    )
    op.create_table(
        "rounds",
        sa.Column("collection", sa.String, primary_key=True),
        sa.Column("round", sa.String, primary_key=True),
        sa.Column("deadline", sa.String, nullable=False),
        sa.Column("version", sa.String, nullable=False),
        sa.Column("closed", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.String, nullable=False),
    )
    op.create_table(
        "issued",
        sa.Column("collection", sa.String, primary_key=True),
        sa.Column("round", sa.String, primary_key=True),
        sa.Column("agency", sa.String, primary_key=True),
        sa.Column("version", sa.String, nullable=False),
        sa.Column("token", sa.String, nullable=False),
        sa.Column("path", sa.String, nullable=False),
        sa.Column("issued_at", sa.String, nullable=False),
        sa.Column("sent_at", sa.String),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_key", sa.String, nullable=False, unique=True),
        sa.Column("sha256", sa.String, nullable=False),
        sa.Column("sender", sa.String, nullable=False),
        sa.Column("subject", sa.String, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("received_at", sa.String, nullable=False),
        sa.Column("stage", sa.String, nullable=False),
        sa.Column("error", sa.String),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("receipt", sa.String, unique=True),
        sa.Column("sha256", sa.String, nullable=False, index=True),
        sa.Column("file_name", sa.String, nullable=False),
        sa.Column("sender", sa.String),
        sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id")),
        sa.Column("received_at", sa.String, nullable=False),
        sa.Column("stage", sa.String, nullable=False),
        sa.Column("processed_at", sa.String),
        sa.Column("kind", sa.String),
        sa.Column("collection", sa.String, index=True),
        sa.Column("round", sa.String),
        sa.Column("agency", sa.String),
        sa.Column("version", sa.String),
        sa.Column("verdict", sa.String),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("warnings", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer),
        sa.Column("duplicate_of", sa.String),
        sa.Column("frame_path", sa.String),
        sa.Column("annotated_path", sa.String),
        sa.Column("receipt_path", sa.String),
        sa.Column("error", sa.String),
    )
    op.create_table(
        "findings",
        sa.Column("submission_id", sa.Integer, sa.ForeignKey("submissions.id"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("code", sa.String, nullable=False),
        sa.Column("severity", sa.String, nullable=False),
        sa.Column("sheet", sa.String),
        sa.Column("cell", sa.String),
        sa.Column("column", sa.String),
        sa.Column("value", sa.String),
        sa.Column("message", sa.String, nullable=False),
    )
    op.create_table(
        "exemptions",
        sa.Column("collection", sa.String, primary_key=True),
        sa.Column("round", sa.String, primary_key=True),
        sa.Column("agency", sa.String, primary_key=True),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("at", sa.String, nullable=False),
    )
    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("collection", sa.String, nullable=False),
        sa.Column("round", sa.String, nullable=False),
        sa.Column("agency", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("recipients", sa.String, nullable=False),
        sa.Column("sent_at", sa.String, nullable=False),
        sa.Column("outgoing_id", sa.Integer),
    )
    op.create_table(
        "outgoing",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("message_id", sa.String, nullable=False),
        sa.Column("recipients", sa.String, nullable=False),
        sa.Column("subject", sa.String, nullable=False),
        sa.Column("path", sa.String, nullable=False),
        sa.Column("stage", sa.String, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String),
        sa.Column("created_at", sa.String, nullable=False),
        sa.Column("sent_at", sa.String),
    )
    op.create_table(
        "signoffs",
        sa.Column("collection", sa.String, primary_key=True),
        sa.Column("round", sa.String, primary_key=True),
        sa.Column("supervisor", sa.String, primary_key=True),
        sa.Column("by", sa.String, nullable=False),
        sa.Column("note", sa.String),
        sa.Column("at", sa.String, nullable=False),
    )


def downgrade() -> None:
    for name in ("signoffs", "outgoing", "reminders", "exemptions", "findings", "submissions", "messages", "issued",
                 "rounds", "template_versions"):
        op.drop_table(name)
