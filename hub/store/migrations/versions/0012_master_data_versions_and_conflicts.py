"""master data: field-level versions, what each partner holds, data conflicts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 16:00:00.000000

Two systems that change the same person concurrently used to overwrite each other: the hub forwarded
each whole record as it came, so the later one undid the earlier one's change at its recipient. The
hub now keeps every accepted value of a field with its version (master_data_fields), what each partner
holds (master_data_exchanges), and the concurrent changes of one field that wait for an operator
(data_conflicts). Persons filed before start without versions: their first record sets them.
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('master_data_fields',
    sa.Column('person_id', sa.String(length=26), nullable=False),
    sa.Column('field', sa.String(length=96), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('set_by', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=26), nullable=True),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('person_id', 'field', 'version', name=op.f('pk_master_data_fields'))
    )
    op.create_table('master_data_exchanges',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('person_id', sa.String(length=26), nullable=False),
    sa.Column('partner_id', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=26), nullable=False),
    sa.Column('direction', sa.String(length=9), nullable=False),
    sa.Column('held', sa.JSON(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_master_data_exchanges'))
    )
    with op.batch_alter_table('master_data_exchanges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_master_data_exchanges_person_id_partner_id'), ['person_id', 'partner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_master_data_exchanges_message_id'), ['message_id'], unique=False)

    op.create_table('data_conflicts',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('person_id', sa.String(length=26), nullable=False),
    sa.Column('field', sa.String(length=96), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('chosen', sa.String(length=1), nullable=True),
    sa.Column('resolution_message_id', sa.String(length=26), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_conflicts'))
    )
    with op.batch_alter_table('data_conflicts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_data_conflicts_status_created_at'), ['status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_data_conflicts_person_id_status'), ['person_id', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('data_conflicts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_data_conflicts_person_id_status'))
        batch_op.drop_index(batch_op.f('ix_data_conflicts_status_created_at'))
    op.drop_table('data_conflicts')
    with op.batch_alter_table('master_data_exchanges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_master_data_exchanges_message_id'))
        batch_op.drop_index(batch_op.f('ix_master_data_exchanges_person_id_partner_id'))
    op.drop_table('master_data_exchanges')
    op.drop_table('master_data_fields')
