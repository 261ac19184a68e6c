"""studio_sessions: Studio sign-ins (an API key exchanged for a cookie; only hashes stored)

Revision ID: 0007_studio
Revises: 0006_uploads
Create Date: 2026-12-06 03:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mocapd.db.models

revision = '0007_studio'
down_revision = '0006_uploads'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('studio_sessions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('key_id', sa.String(length=40), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', mocapd.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', mocapd.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', mocapd.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_studio_sessions_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['key_id'], ['api_keys.id'], name=op.f('fk_studio_sessions_key_id_api_keys'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_studio_sessions')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_studio_sessions_token_sha256'))
    )
    with op.batch_alter_table('studio_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_studio_sessions_account_id'), ['account_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('studio_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_studio_sessions_account_id'))
    op.drop_table('studio_sessions')
