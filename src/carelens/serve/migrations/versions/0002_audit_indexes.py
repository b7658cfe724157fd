"""Indexes for the audit log's two frequent lookups: retention pruning (``predictions.created``) and a
prediction's feedback (``feedback.prediction_id``); both were full-table scans.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_predictions_created", "predictions", ["created"])
    op.create_index("ix_feedback_prediction_id", "feedback", ["prediction_id"])


def downgrade() -> None:
    op.drop_index("ix_feedback_prediction_id", "feedback")
    op.drop_index("ix_predictions_created", "predictions")
