from alembic import context

from delinkcious.links.tables import metadata
from delinkcious.platform.migrations import run_env

run_env(context, metadata, version_table="links_alembic_version")
