"""console queries: search indexes, the message-case index, dead-letter indexes, flow counters

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 20:00:00.000000

The console answers over a million messages within a page's time: a partner's or a type's messages
newest first walk (sender, id) and (message_type, id); a partner's received messages walk
deliveries (recipient, message_id); a case's messages come from message_cases (filled here from the
history's `chain.case` events, from now on by the pipeline); the flows sum hourly and daily counters
(flow_counts) that a roll-up fills from the outcome events, found through a partial index on the
history that holds only those events.
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

OUTCOMES = "event IN ('received', 'routed', 'rejected', 'duplicate', 'delivered', 'dead')"


def upgrade() -> None:
    op.create_index('ix_messages_sender_id', 'messages', ['sender', 'id'])
    op.create_index('ix_messages_message_type_id', 'messages', ['message_type', 'id'])
    op.create_index('ix_deliveries_recipient_message_id', 'deliveries', ['recipient', 'message_id'])
    op.create_index('ix_dead_letters_message_id', 'dead_letters', ['message_id'])
    op.create_index('ix_dead_letters_at', 'dead_letters', ['at'])
    op.create_index('ix_case_members_local_ref', 'case_members', ['local_ref'])
    op.create_index(
        'ix_message_events_outcomes', 'message_events', ['at', 'event', 'message_id'],
        sqlite_where=sa.text(OUTCOMES), postgresql_where=sa.text(OUTCOMES),
    )
    op.create_table('message_cases',
    sa.Column('case_id', sa.String(length=26), nullable=False),
    sa.Column('message_id', sa.String(length=26), nullable=False),
    sa.PrimaryKeyConstraint('case_id', 'message_id', name=op.f('pk_message_cases'))
    )
    case = "detail ->> 'case'" if op.get_bind().dialect.name == "postgresql" else "json_extract(detail, '$.case')"
    op.execute(
        f"INSERT INTO message_cases (case_id, message_id) SELECT DISTINCT {case}, message_id FROM message_events "
        f"WHERE stage = 'chain' AND event = 'case' AND {case} IS NOT NULL"
    )
    op.create_table('flow_counts',
    sa.Column('span', sa.String(length=4), nullable=False),
    sa.Column('start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('partner', sa.String(length=64), nullable=False),
    sa.Column('message_type', sa.String(length=64), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('span', 'start', 'partner', 'message_type', 'outcome', name=op.f('pk_flow_counts')),
    sqlite_with_rowid=False,
    )
    op.create_table('flow_rollup',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flow_rollup'))
    )


def downgrade() -> None:
    op.drop_table('flow_rollup')
    op.drop_table('flow_counts')
    op.drop_table('message_cases')
    op.drop_index('ix_message_events_outcomes', table_name='message_events')
    op.drop_index('ix_case_members_local_ref', table_name='case_members')
    op.drop_index('ix_dead_letters_at', table_name='dead_letters')
    op.drop_index('ix_dead_letters_message_id', table_name='dead_letters')
    op.drop_index('ix_deliveries_recipient_message_id', table_name='deliveries')
    op.drop_index('ix_messages_message_type_id', table_name='messages')
    op.drop_index('ix_messages_sender_id', table_name='messages')
