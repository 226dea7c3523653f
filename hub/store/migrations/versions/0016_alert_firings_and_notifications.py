"""alerts: firing instances and their notifications

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 20:00:00.000000

Alerts are data (contracts/alerts.yaml); what fired, and which notification went where, is kept so
that an instance is notified once with any number of workers and across restarts.
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alert_firings',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('key', sa.String(length=240), nullable=False),
    sa.Column('alert_id', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=160), nullable=False),
    sa.Column('episode', sa.Integer(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('text', sa.String(length=500), nullable=False),
    sa.Column('link', sa.String(length=240), nullable=False),
    sa.Column('case_id', sa.String(length=26), nullable=True),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_firings')),
    sa.UniqueConstraint('key', name=op.f('uq_alert_firings_key'))
    )
    with op.batch_alter_table('alert_firings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_firings_resolved_at_alert_id'), ['resolved_at', 'alert_id'], unique=False)
    op.create_table('alert_notifications',
    sa.Column('id', sa.String(length=26), nullable=False),
    sa.Column('firing_id', sa.String(length=26), nullable=False),
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('available_at', sa.Float(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_notifications')),
    sa.UniqueConstraint('firing_id', 'channel', name=op.f('uq_alert_notifications_firing_id_channel'))
    )
    with op.batch_alter_table('alert_notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_notifications_status_available_at'), ['status', 'available_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alert_notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_notifications_status_available_at'))
    op.drop_table('alert_notifications')
    with op.batch_alter_table('alert_firings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_firings_resolved_at_alert_id'))
    op.drop_table('alert_firings')
