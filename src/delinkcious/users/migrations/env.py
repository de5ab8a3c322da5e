from alembic import context

from delinkcious.platform.migrations import run_env
from delinkcious.users.tables import metadata

run_env(context, metadata, version_table="users_alembic_version")
