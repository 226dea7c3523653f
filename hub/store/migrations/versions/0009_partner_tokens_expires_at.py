"""partner_tokens.expires_at: bearer tokens expire

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 14:00:00.000000

`hub partners token` minted tokens that were valid for ever, and the only way out was revoking all of
a partner's tokens at once. A token now has an expiry (`--expires-in DAYS`, a year by default); the
API refuses it once passed (401). Tokens issued before keep NULL: they do not expire, and
`hub partners tokens PARTNER` lists them as such, so an operator can replace and revoke them.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('partner_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('partner_tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
