"""Alembic's entry point for the audit-log migrations (run by ``carelens.serve.storage.migrate``, which passes the
connection: there is no alembic.ini to keep in step with the service's settings)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

connection = context.config.attributes["connection"]
# SQLite cannot ALTER most things in place: Alembic's batch mode copies the table instead
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # several service workers may start at once: one migrates, the others wait and then find nothing to do
        connection.execute(text("SELECT pg_advisory_xact_lock(20261126)"))
    context.run_migrations()
