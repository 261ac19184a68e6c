"""resumable uploads (tus_uploads) and re-export provenance (jobs.source_type, jobs.parent_job_id)

Revision ID: 0006_uploads
Revises: 0002
Create Date: 2026-12-06 02:50:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mocapd.db.models

revision = '0006_uploads'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tus_uploads',
    sa.Column('job_id', sa.String(length=40), nullable=False),
    sa.Column('upload_id', sa.String(length=40), nullable=False),
    sa.Column('length', sa.BigInteger(), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('upload_metadata', sa.JSON(), nullable=True),
    sa.Column('store_state', sa.JSON(), nullable=False),
    sa.Column('lock_token', sa.String(length=40), nullable=True),
    sa.Column('lock_expires_at', mocapd.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', mocapd.db.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', mocapd.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', mocapd.db.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_tus_uploads_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_tus_uploads')),
    sa.UniqueConstraint('upload_id', name=op.f('uq_tus_uploads_upload_id'))
    )
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.add_column(sa.Column('source_type', sa.String(length=16), server_default='upload', nullable=False))
        batch_op.add_column(sa.Column('parent_job_id', sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_parent_job_id'), ['parent_job_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_parent_job_id'))
        batch_op.drop_column('parent_job_id')
        batch_op.drop_column('source_type')
    op.drop_table('tus_uploads')
