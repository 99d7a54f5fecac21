"""probe identities: what `plantguard probe --send` learnt per device, with its evidence

Revision ID: b7e2a91c4d05
Revises: 3f1c2b7d9e40
Create Date: 2026-12-04 15:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = 'b7e2a91c4d05'
down_revision = '3f1c2b7d9e40'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'probe_identity',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ip', sa.String(length=64), nullable=False),
        sa.Column('probed_at', sa.Float(), nullable=False),
        sa.Column('identity', sa.JSON(), nullable=False),
        sa.Column('sources', sa.JSON(), nullable=False),
        sa.Column('queries', sa.JSON(), nullable=False),
        sa.Column('evidence', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('probe_identity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_probe_identity_ip'), ['ip'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('probe_identity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_probe_identity_ip'))
    op.drop_table('probe_identity')
