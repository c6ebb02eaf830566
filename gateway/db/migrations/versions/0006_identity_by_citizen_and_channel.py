"""channel identities indexed by (citizen_id, channel)

Broadcast audiences look up each citizen's SMS and WeChat address. With only an index on citizen_id,
PostgreSQL without fresh statistics (right after a bulk load) ANDed it with the (channel, address)
index, reading every WeChat identity for every citizen: 7 ms a citizen, 14 s a page of 2,000 at
250,000 residents. One index on both columns answers the lookup directly whatever the statistics.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 18:50:00
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('channelidentity', schema=None) as batch_op:
        batch_op.create_index('ix_channelidentity_citizen_id_channel', ['citizen_id', 'channel'], unique=False)
        batch_op.drop_index('ix_channelidentity_citizen_id')


def downgrade() -> None:
    with op.batch_alter_table('channelidentity', schema=None) as batch_op:
        batch_op.create_index('ix_channelidentity_citizen_id', ['citizen_id'], unique=False)
        batch_op.drop_index('ix_channelidentity_citizen_id_channel')
