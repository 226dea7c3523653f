"""person_records.norm: the normalised comparison fields, stored once

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:40:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows keep NULL: the person index computes their form from `data` when it reads
    # them (hub/dedup/person_index.py) and writes it with the next update of the record.
    with op.batch_alter_table('person_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('norm', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('person_records', schema=None) as batch_op:
        batch_op.drop_column('norm')
