from alembic import context

from delinkcious.news.tables import metadata
from delinkcious.platform.migrations import run_env

run_env(context, metadata, version_table="news_alembic_version")
