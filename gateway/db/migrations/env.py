from alembic import context
from sqlmodel import SQLModel

import gateway.db.models  # noqa: F401  (registers the tables)
from gateway.db.engine import sync_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    engine = sync_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
