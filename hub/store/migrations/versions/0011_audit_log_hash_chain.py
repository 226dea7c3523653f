"""audit_log hash chain: shard, seq, prev_hash, hash; audit_heads; audit_anchors

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 18:00:00.000000

The audit log becomes tamper-evident (hub/store/audit_chain.py): every entry is chained onto one of
16 shards by the hash of the entry before it. Entries written before this migration are chained onto
shard 0 in the order of their ids (their purpose and legal basis stay as they were, possibly empty);
the other shards start empty.
"""
from alembic import op
import sqlalchemy as sa

from hub.store.audit_chain import GENESIS, SHARDS, entry_hash


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shard', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    head = _chain_existing_entries()
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        for name in ('shard', 'seq'):
            batch_op.alter_column(name, existing_type=sa.Integer(), nullable=False)
        for name in ('prev_hash', 'hash'):
            batch_op.alter_column(name, existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_log_shard_seq'), ['shard', 'seq'])
    heads = op.create_table(
        'audit_heads',
        sa.Column('shard', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('shard', name=op.f('pk_audit_heads')),
    )
    op.bulk_insert(heads, [{'shard': 0, 'seq': head[0], 'hash': head[1]}] + [{'shard': s, 'seq': 0, 'hash': GENESIS} for s in range(1, SHARDS)])
    op.create_table(
        'audit_anchors',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('shard', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_anchors')),
    )
    with op.batch_alter_table('audit_anchors', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_anchors_at'), ['at'], unique=False)


def _chain_existing_entries() -> tuple[int, str]:
    """Chain the entries already there onto shard 0, by id; returns shard 0's head (seq, hash)."""
    log = sa.table(
        'audit_log',
        *(sa.column(n, sa.String()) for n in ('actor', 'action', 'message_id', 'delivery_id', 'partner', 'purpose', 'legal_basis', 'prev_hash', 'hash')),
        sa.column('id', sa.Integer()), sa.column('at', sa.DateTime(timezone=True)), sa.column('detail', sa.JSON()),
        sa.column('shard', sa.Integer()), sa.column('seq', sa.Integer()),
    )
    conn = op.get_bind()
    seq, prev, last_id = 0, GENESIS, 0
    update = log.update().where(log.c.id == sa.bindparam('b_id')).values(
        shard=0, seq=sa.bindparam('b_seq'), prev_hash=sa.bindparam('b_prev'), hash=sa.bindparam('b_hash')
    )
    while True:
        rows = conn.execute(sa.select(log).where(log.c.id > last_id).order_by(log.c.id).limit(_BATCH)).mappings().all()
        if not rows:
            return seq, prev
        changes = []
        for row in rows:
            seq += 1
            entry = {**row, 'shard': 0, 'seq': seq, 'prev_hash': prev}  # detail as read back: already the JSON column's form
            prev = entry_hash(entry)
            changes.append({'b_id': row['id'], 'b_seq': seq, 'b_prev': entry['prev_hash'], 'b_hash': prev})
        conn.execute(update, changes)
        last_id = rows[-1]['id']


def downgrade() -> None:
    with op.batch_alter_table('audit_anchors', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_anchors_at'))
    op.drop_table('audit_anchors')
    op.drop_table('audit_heads')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_audit_log_shard_seq'), type_='unique')
        for name in ('hash', 'prev_hash', 'seq', 'shard'):
            batch_op.drop_column(name)
