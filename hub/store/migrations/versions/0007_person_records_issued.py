"""person_records.issued: pseudonyms the hub issued to a recipient are marked

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 06:30:00.000000

A pseudonym record holds a copy of the data the recipient was given. Unmarked, it counted as one of
the person's records: a sender's later correction was scored against that stale copy of itself and
split off, and `PersonIndex.refresh` gave it blocking keys.
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('person_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('issued', sa.Boolean(), nullable=False, server_default=sa.false()))
    # pseudonym records written before this migration: no message, a HUB id (hub.dedup.person_index)
    op.execute("UPDATE person_records SET issued = true WHERE message_id IS NULL AND local_id LIKE 'HUB%' AND norm IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('person_records', schema=None) as batch_op:
        batch_op.drop_column('issued')
