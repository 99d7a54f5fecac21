"""central findings: `suppressed`, set for an accepted risk (the contract's `suppressed`)

Revision ID: 3f1c2b7d9e40
Revises: 129037dde8de
Create Date: 2026-12-03 20:45:00
"""
import sqlalchemy as sa
from alembic import op

revision = '3f1c2b7d9e40'
down_revision = '129037dde8de'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('central_findings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suppressed', sa.Boolean(), server_default=sa.false(), nullable=False))
    # rows stored before: the finding's JSON says whether it was accepted
    findings = sa.table('central_findings', sa.column('id', sa.Integer), sa.column('data', sa.JSON),
                        sa.column('suppressed', sa.Boolean))
    conn = op.get_bind()
    accepted = [r.id for r in conn.execute(sa.select(findings.c.id, findings.c.data))
                if isinstance(r.data, dict) and r.data.get('suppressed')]
    for start in range(0, len(accepted), 500):
        conn.execute(findings.update().where(findings.c.id.in_(accepted[start:start + 500])).values(suppressed=True))


def downgrade() -> None:
    with op.batch_alter_table('central_findings', schema=None) as batch_op:
        batch_op.drop_column('suppressed')
