"""paid bookings and refunds

A payment order can be for a held booking (cinema tickets) instead of a bill: account_no and period become
optional and booking_id names the booking. A paid order whose money goes back records its refund
(out_refund_no, unique: the provider's idempotency key; refund_status; refund_reason; refunded_at).
expires_at is indexed for the periodic close of unpaid orders.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 19:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('paymentorder', schema=None) as batch_op:
        batch_op.alter_column('account_no', existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        batch_op.alter_column('period', existing_type=sqlmodel.sql.sqltypes.AutoString(length=7), nullable=True)
        batch_op.add_column(sa.Column('booking_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('out_refund_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('refund_status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.add_column(sa.Column('refund_reason', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True))
        batch_op.add_column(sa.Column('refunded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_foreign_key('fk_paymentorder_booking_id_booking', 'booking', ['booking_id'], ['id'])
        batch_op.create_unique_constraint('uq_paymentorder_out_refund_no', ['out_refund_no'])
        batch_op.create_index(batch_op.f('ix_paymentorder_booking_id'), ['booking_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_paymentorder_refund_status'), ['refund_status'], unique=False)
        batch_op.create_index(batch_op.f('ix_paymentorder_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('paymentorder', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_paymentorder_expires_at'))
        batch_op.drop_index(batch_op.f('ix_paymentorder_refund_status'))
        batch_op.drop_index(batch_op.f('ix_paymentorder_booking_id'))
        batch_op.drop_constraint('uq_paymentorder_out_refund_no', type_='unique')
        batch_op.drop_constraint('fk_paymentorder_booking_id_booking', type_='foreignkey')
        batch_op.drop_column('refunded_at')
        batch_op.drop_column('refund_reason')
        batch_op.drop_column('refund_status')
        batch_op.drop_column('out_refund_no')
        batch_op.drop_column('booking_id')
        batch_op.alter_column('period', existing_type=sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False)
        batch_op.alter_column('account_no', existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False)
