"""outbox.last_error: the last failure of a queue item, kept for its dead letter

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:00:00.000000

A dead letter said "gave up after 5 attempts" and nothing about why: the failure of each attempt was
only logged. The item now carries the last one (type and message, no personal data: hub.errors), and
its dead letter, the message history and `hub messages dead` show it.
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('last_error')
