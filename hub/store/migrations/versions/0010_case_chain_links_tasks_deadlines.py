"""The case chain: links, their record, deadlines and tasks; a case's status

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 17:30:00.000000

Until now a case knew only who belonged to it. A chain of links (one per assignment of the client to
a measure) now follows the lifecycle in contracts/chain/lifecycle.yaml, with the reports each link
received, the deadlines a partner owes and the tasks the steering rules open for the case owner.
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(24), nullable=False, server_default='open'))
        batch_op.add_column(sa.Column('closed_at', TS, nullable=True))
    op.create_table(
        'chain_links',
        sa.Column('id', sa.String(26), nullable=False),
        sa.Column('case_id', sa.String(26), nullable=False),
        sa.Column('partner_id', sa.String(64), nullable=False),
        sa.Column('measure_number', sa.String(40), nullable=False),
        sa.Column('status', sa.String(24), nullable=False),
        sa.Column('branch', sa.String(2)),
        sa.Column('period_start', sa.Date),
        sa.Column('period_end', sa.Date),
        sa.Column('weekly_hours', sa.Numeric(4, 1)),
        sa.Column('start_date', sa.Date),
        sa.Column('end_date', sa.Date),
        sa.Column('outcome', sa.String(40)),
        sa.Column('outcome_reason', sa.String(40)),
        sa.Column('destination', sa.String(40)),
        sa.Column('test', sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column('opened_at', TS, nullable=False),
        sa.Column('updated_at', TS, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_chain_links')),
    )
    op.create_index('ix_chain_links_case_id_partner_id_measure_number', 'chain_links', ['case_id', 'partner_id', 'measure_number'])
    op.create_table(
        'chain_events',
        sa.Column('id', sa.Integer, autoincrement=True, nullable=False),
        sa.Column('case_id', sa.String(26), nullable=False),
        sa.Column('link_id', sa.String(26)),
        sa.Column('at', TS, nullable=False),
        sa.Column('kind', sa.String(24), nullable=False),
        sa.Column('message_id', sa.String(26)),
        sa.Column('message_type', sa.String(64)),
        sa.Column('status_from', sa.String(24)),
        sa.Column('status_to', sa.String(24)),
        sa.Column('detail', sa.JSON),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_chain_events')),
    )
    op.create_index('ix_chain_events_link_id_id', 'chain_events', ['link_id', 'id'])
    op.create_index('ix_chain_events_case_id_id', 'chain_events', ['case_id', 'id'])
    op.create_index('ix_chain_events_message_id', 'chain_events', ['message_id'])
    op.create_table(
        'chain_deadlines',
        sa.Column('id', sa.String(26), nullable=False),
        sa.Column('key', sa.String(120), nullable=False),
        sa.Column('case_id', sa.String(26), nullable=False),
        sa.Column('link_id', sa.String(26)),
        sa.Column('partner_id', sa.String(64), nullable=False),
        sa.Column('kind', sa.String(40), nullable=False),
        sa.Column('message_type', sa.String(64)),
        sa.Column('month', sa.String(7)),
        sa.Column('task_id', sa.String(26)),
        sa.Column('due_on', sa.Date, nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('rule_id', sa.String(64), nullable=False),
        sa.Column('rule_version', sa.String(40), nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.Column('resolved_at', TS),
        sa.Column('met_on', sa.Date),
        sa.Column('met_by', sa.String(26)),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_chain_deadlines')),
        sa.UniqueConstraint('key', name=op.f('uq_chain_deadlines_key')),
    )
    op.create_index('ix_chain_deadlines_status_due_on', 'chain_deadlines', ['status', 'due_on'])
    op.create_index('ix_chain_deadlines_link_id_message_type_status', 'chain_deadlines', ['link_id', 'message_type', 'status'])
    op.create_index('ix_chain_deadlines_case_id', 'chain_deadlines', ['case_id'])
    op.create_table(
        'chain_tasks',
        sa.Column('id', sa.String(26), nullable=False),
        sa.Column('key', sa.String(120), nullable=False),
        sa.Column('case_id', sa.String(26), nullable=False),
        sa.Column('link_id', sa.String(26)),
        sa.Column('owner', sa.String(64), nullable=False),
        sa.Column('kind', sa.String(40), nullable=False),
        sa.Column('title', sa.String(255), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('due_on', sa.Date, nullable=False),
        sa.Column('rule_id', sa.String(64), nullable=False),
        sa.Column('rule_version', sa.String(40), nullable=False),
        sa.Column('proposed_measure', sa.String(64)),
        sa.Column('cause_message_id', sa.String(26)),
        sa.Column('cause_deadline_id', sa.String(26)),
        sa.Column('spec', sa.JSON, nullable=False),
        sa.Column('closes_on', sa.String(64)),
        sa.Column('created_at', TS, nullable=False),
        sa.Column('decision', sa.String(40)),
        sa.Column('remark', sa.Text),
        sa.Column('completed_at', TS),
        sa.Column('completed_by', sa.String(64)),
        sa.Column('decision_message_id', sa.String(26)),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_chain_tasks')),
        sa.UniqueConstraint('key', name=op.f('uq_chain_tasks_key')),
    )
    op.create_index('ix_chain_tasks_owner_status_due_on', 'chain_tasks', ['owner', 'status', 'due_on'])
    op.create_index('ix_chain_tasks_case_id', 'chain_tasks', ['case_id'])
    op.create_index('ix_chain_tasks_link_id_status_closes_on', 'chain_tasks', ['link_id', 'status', 'closes_on'])


def downgrade() -> None:
    for table in ('chain_tasks', 'chain_deadlines', 'chain_events', 'chain_links'):
        op.drop_table(table)
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('closed_at')
        batch_op.drop_column('status')
