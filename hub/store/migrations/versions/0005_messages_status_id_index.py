"""messages: index (status, id) instead of (status)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 05:00:00.000000

The embedded worker checks, under the write lock, that the messages it processed beside the lock
are still `received` (`WHERE id IN (...) AND status = 'received'`). With an index on status alone
SQLite walked every received message (the whole backlog) and read each one's table row for its id;
on (status, id) the check is a few lookups in a covering index.
"""
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_messages_status_id', 'messages', ['status', 'id'])
    op.drop_index('ix_messages_status', table_name='messages')


def downgrade() -> None:
    op.create_index('ix_messages_status', 'messages', ['status'])
    op.drop_index('ix_messages_status_id', table_name='messages')
