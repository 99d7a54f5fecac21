"""change tickets: one row per ticket (store/change_tables.py)

Revision ID: 129037dde8de
Revises: 852351fadb38
Create Date: 2026-12-03 16:55:36.889089
"""
from alembic import op
import sqlalchemy as sa


revision = '129037dde8de'
down_revision = '852351fadb38'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('change_ticket',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site', sa.String(length=200), nullable=False),
    sa.Column('ticket', sa.String(length=120), nullable=False),
    sa.Column('plcs', sa.JSON(), nullable=False),
    sa.Column('stations', sa.JSON(), nullable=False),
    sa.Column('starts_at', sa.Float(), nullable=False),
    sa.Column('ends_at', sa.Float(), nullable=False),
    sa.Column('operations', sa.JSON(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('added_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('site', 'ticket')
    )


def downgrade() -> None:
    op.drop_table('change_ticket')
