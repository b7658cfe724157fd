"""Shared state of a service's workers: counters that each worker polls (``models``: bumped by an admin reload, so
that every worker reloads its bundles, not only the one that answered the request).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "service_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    )
    assert table is not None
    # the row exists before any worker bumps it, so that a bump is one UPDATE, atomic on every database
    op.bulk_insert(table, [{"key": "models", "value": 0, "updated": dt.datetime.now(dt.UTC)}])


def downgrade() -> None:
    op.drop_table("service_state")
