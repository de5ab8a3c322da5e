from alembic import context

from delinkcious.platform.migrations import run_env
from delinkcious.social_graph.tables import metadata

run_env(context, metadata, version_table="social_graph_alembic_version")
