"""payment orders

A utility bill is paid only when WeChat Pay's verified notification settles its order: one row per order
asked of the provider. pending_key ("account_no:period" while pending, NULL after) is unique, so a bill
has at most one payable order.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 16:43:05
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('paymentorder',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('out_trade_no', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('account_no', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('citizen_id', sa.Integer(), nullable=True),
    sa.Column('conversation_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('pending_key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('code_url', sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('paid_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('transaction_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('payment_ref', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
    sa.ForeignKeyConstraint(['account_no'], ['utilityaccount.account_no'], ),
    sa.ForeignKeyConstraint(['citizen_id'], ['citizen.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('out_trade_no'),
    sa.UniqueConstraint('pending_key')
    )
    with op.batch_alter_table('paymentorder', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_paymentorder_account_no'), ['account_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_paymentorder_citizen_id'), ['citizen_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('paymentorder', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_paymentorder_citizen_id'))
        batch_op.drop_index(batch_op.f('ix_paymentorder_account_no'))

    op.drop_table('paymentorder')
