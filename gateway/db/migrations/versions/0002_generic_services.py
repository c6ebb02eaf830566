"""generic services

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:12:42.576473
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('resourceslot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('place_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('service_id', 'place_id', 'day', 'period')
    )
    op.create_table('application',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('service_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('citizen_id', sa.Integer(), nullable=True),
    sa.Column('conversation_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizen.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ref')
    )
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_application_citizen_id'), ['citizen_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_application_service_id'), ['service_id'], unique=False)

    op.create_table('subscription',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('citizen_id', sa.Integer(), nullable=False),
    sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizen.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('citizen_id', 'topic')
    )
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscription_citizen_id'), ['citizen_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subscription_topic'), ['topic'], unique=False)

    op.create_table('topup',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('citizen_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizen.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ref')
    )
    with op.batch_alter_table('topup', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_topup_phone'), ['phone'], unique=False)

    with op.batch_alter_table('booking', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resource_slot_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_booking_resource_slot_id', 'resourceslot', ['resource_slot_id'], ['id'])




def downgrade() -> None:

    with op.batch_alter_table('booking', schema=None) as batch_op:
        # WARNING: constraint name is None; this directive will fail as
        # rendered.  Add a name, or use a naming convention; see
        # https://alembic.sqlalchemy.org/en/latest/naming.html
        batch_op.drop_constraint('fk_booking_resource_slot_id', type_='foreignkey')
        batch_op.drop_column('resource_slot_id')

    with op.batch_alter_table('topup', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_topup_phone'))

    op.drop_table('topup')
    with op.batch_alter_table('subscription', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscription_topic'))
        batch_op.drop_index(batch_op.f('ix_subscription_citizen_id'))

    op.drop_table('subscription')
    with op.batch_alter_table('application', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_application_service_id'))
        batch_op.drop_index(batch_op.f('ix_application_citizen_id'))

    op.drop_table('application')
    op.drop_table('resourceslot')

