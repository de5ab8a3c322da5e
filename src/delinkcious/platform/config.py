"""Settings from ``DELINKCIOUS_*`` environment variables (and command-line overrides).

Secrets are ``SecretStr``: they print as ``**********`` in any log or traceback.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from delinkcious import __version__
from delinkcious.link_checker.guard import parse_networks
from delinkcious.platform.logs import parse_format, parse_level
from delinkcious.platform.middleware.faults import parse_faults


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DELINKCIOUS_", extra="ignore")

    data_dir: Path = Path(".delinkcious")
    links_database_url: str | None = None
    users_database_url: str | None = None
    social_graph_database_url: str | None = None
    # News feeds live in Redis when this is set, else in SQL (news_database_url).
    news_redis_url: SecretStr | None = None
    news_database_url: str | None = None
    # Passwords kept apart from the URLs, so that a URL can sit in a ConfigMap and its
    # password in a Secret; each is used when set.
    links_database_password: SecretStr | None = None
    users_database_password: SecretStr | None = None
    social_graph_database_password: SecretStr | None = None
    news_database_password: SecretStr | None = None
    news_redis_password: SecretStr | None = None
    # Connections per process to its PostgreSQL database (pool, then overflow): every
    # replica's count against the server's max_connections.
    database_pool_size: int = Field(10, ge=1)
    database_max_overflow: int = Field(10, ge=0)
    news_feed_cap: int = Field(1000, ge=1)
    news_redis_prefix: str = "delinkcious:news:"
    nats_url: SecretStr | None = None
    nats_stream: str = "DELINKCIOUS"
    nats_subject_prefix: str = "delinkcious.events"
    # Where the other services answer, in the distributed shape (one process each).
    links_url: str | None = None
    users_url: str | None = None
    social_graph_url: str | None = None
    news_url: str | None = None
    # The traffic shaper's route table (YAML/JSON): stable and canary replicas of the
    # services this process calls; reloaded when it changes. Unset: the URLs above.
    routes_file: Path | None = None
    # Who may call a service's internal API: `caller=secret,...`; a process presents the
    # secret of its own name when it calls another service. The gateway also lets the
    # `admin` entry read its route table.
    internal_tokens: SecretStr | None = None
    # How long a starting service waits for its database, broker or cache to come up.
    startup_timeout_seconds: float = Field(60.0, gt=0)
    # The running release, on every metric series (a canary is compared with its baseline).
    version: str = __version__
    # The commit it was built from (the image sets it); unset, the git checkout's, if any.
    revision: str | None = None
    log_level: str = "INFO"
    # json | console; unset: console when stderr is a terminal, else json.
    log_format: str | None = None
    # Drills: "links.add_link:latency=6s,links.get_links:error=0.2" (off when empty).
    faults: str = ""
    # Logging, metrics and tracing middleware; off only to measure what they cost.
    middleware: bool = True
    # Comma-separated CIDRs the link checker may reach although they are not public.
    link_checker_allowed_networks: str = ""
    link_checker_connect_timeout: float = Field(3.0, gt=0)
    link_checker_total_timeout: float = Field(10.0, gt=0)
    link_checker_max_concurrency: int = Field(16, ge=1)
    link_checker_retries: int = Field(2, ge=0)
    link_checker_backoff_seconds: float = Field(0.5, ge=0)
    max_links_per_user: int = Field(1000, ge=1)
    session_ttl_seconds: int = Field(30 * 86_400, ge=60)
    session_cache_seconds: float = Field(5.0, ge=0, le=60)
    page_token_ttl_seconds: int = Field(86_400, ge=60)
    # Signs page tokens. Every replica of the links service must share it; when unset,
    # the embedded shape keeps a generated one in the data directory.
    secret_key: SecretStr | None = None
    max_body_bytes: int = Field(1 << 20, ge=1024)

    @field_validator("link_checker_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        parse_networks(value)  # a bad CIDR fails at start, with the reason
        return value

    @field_validator("log_level")
    @classmethod
    def _valid_level(cls, value: str) -> str:
        parse_level(value)
        return value

    @field_validator("log_format")
    @classmethod
    def _valid_format(cls, value: str | None) -> str | None:
        return parse_format(value)

    @field_validator("faults")
    @classmethod
    def _valid_faults(cls, value: str) -> str:
        parse_faults(value)  # the syntax; the registry checks the services and methods named
        return value

    def database_url(self, service: str) -> str:
        """The service's own database, with its password when one is set apart."""
        configured = getattr(self, f"{service}_database_url")
        if configured is None:
            return f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"
        password = getattr(self, f"{service}_database_password")
        if password is None:
            return str(configured)
        return (
            make_url(configured)
            .set(password=password.get_secret_value())
            .render_as_string(hide_password=False)
        )

    def page_token_secret(self) -> bytes:
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text().strip().encode()
