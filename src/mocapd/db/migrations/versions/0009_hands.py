"""jobs.hand_tracking: the job asked for finger motion

Revision ID: 0009_hands
Revises: 0005_avatars
Create Date: 2026-12-06 03:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_hands'
down_revision = '0005_avatars'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('hand_tracking', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_column('hand_tracking')
