"""controlling: indexes for the figures per provider, measure, sender and partner

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 20:30:00.000000

The controlling figures (hub/chain/controlling.py) count over the whole store: deadlines kept on
time per link and kind, the cooperation feedbacks, decisions and invoice lines of the links' record,
messages per sender and status, usually over a period (a month, a quarter). Each is answered from an
index of its own that starts with the period's column: a range of the index instead of the table,
and for the record only the entries of the kinds counted, not the monthly reports around them.
"""
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_messages_created_at_sender_status_test_id', 'messages', ['created_at', 'sender', 'status', 'test', 'id'])
    op.create_index('ix_chain_events_kind_at_link_id', 'chain_events', ['kind', 'at', 'link_id'])
    op.create_index('ix_chain_deadlines_due_on_link_id_partner_id_kind_status_met_on', 'chain_deadlines',
                    ['due_on', 'link_id', 'partner_id', 'kind', 'status', 'met_on'])


def downgrade() -> None:
    op.drop_index('ix_chain_deadlines_due_on_link_id_partner_id_kind_status_met_on', table_name='chain_deadlines')
    op.drop_index('ix_chain_events_kind_at_link_id', table_name='chain_events')
    op.drop_index('ix_messages_created_at_sender_status_test_id', table_name='messages')
