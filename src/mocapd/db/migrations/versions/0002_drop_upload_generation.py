"""drop jobs.upload_generation (the service never read or wrote it past 0 since the first release)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 19:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:  # SQLite copies the table; PostgreSQL drops in place
        batch_op.drop_column('upload_generation')


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('upload_generation', sa.Integer(), nullable=False, server_default='0'))
