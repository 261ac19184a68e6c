"""avatars: users' rigged characters (SPEC 12)

Revision ID: 0005_avatars
Revises: 0008_models
Create Date: 2026-12-06 03:15:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mocapd.db.models

revision = '0005_avatars'
down_revision = '0008_models'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('avatars',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source_filename', sa.String(length=255), nullable=False),
    sa.Column('source_key', sa.String(length=255), nullable=False),
    sa.Column('rig_key', sa.String(length=255), nullable=True),
    sa.Column('claimed_bytes', sa.BigInteger(), nullable=True),
    sa.Column('claimed_sha256', sa.String(length=64), nullable=True),
    sa.Column('upload_bytes', sa.BigInteger(), nullable=True),
    sa.Column('upload_sha256', sa.String(length=64), nullable=True),
    sa.Column('max_upload_bytes', sa.BigInteger(), nullable=False),
    sa.Column('facts', sa.JSON(), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('created_at', mocapd.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mocapd.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('locked_until', mocapd.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('purge_after', mocapd.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_avatars_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_avatars'))
    )
    with op.batch_alter_table('avatars', schema=None) as batch_op:
        batch_op.create_index('ix_avatars_account_created', ['account_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_avatars_purge', ['purge_after'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('avatars', schema=None) as batch_op:
        batch_op.drop_index('ix_avatars_purge')
        batch_op.drop_index('ix_avatars_account_created')
    op.drop_table('avatars')
