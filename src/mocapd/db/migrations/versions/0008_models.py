"""jobs.model_quality: the pose model a job asked for ("standard" or "high")

Revision ID: 0008_models
Revises: 0007_studio
Create Date: 2026-12-06 03:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008_models'
down_revision = '0007_studio'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('model_quality', sa.String(length=16), nullable=False, server_default='standard'))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_column('model_quality')
