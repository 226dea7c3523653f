"""outbox: index (queue, id) instead of (queue, available_at)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 05:20:00.000000

A consumer of the embedded queue claims `WHERE queue = ? AND available_at <= now ORDER BY id LIMIT
32`. On (queue, available_at) SQLite fetched every ready item of the queue -- the whole backlog --
and sorted it in a temporary B-tree, under the write lock, for each claim. On (queue, id) it walks
the queue in id order and stops at the 32nd ready item (the claimed ones it skips are at most
workers x batch).
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_outbox_queue_id', 'outbox', ['queue', 'id'])
    op.drop_index('ix_outbox_queue_available_at', table_name='outbox')


def downgrade() -> None:
    op.create_index('ix_outbox_queue_available_at', 'outbox', ['queue', 'available_at'])
    op.drop_index('ix_outbox_queue_id', table_name='outbox')
