"""Alembic environment of the index: runs on the connection :func:`dicom_node.store.schema.migrate`
hands it (under its database lock), never on a URL of its own."""

from __future__ import annotations

from alembic import context

from dicom_node.store.schema import index_metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=index_metadata(), render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
