"""The service registry: the one description every list of services derives from."""

from __future__ import annotations

import importlib.util
import inspect

import pytest
from sqlalchemy.engine import make_url

import delinkcious.wiring
from delinkcious.platform.config import Settings
from delinkcious.platform.transport import describe
from delinkcious.registry import (
    NAMES,
    SERVICES,
    ConfigurationError,
    build_order,
    callers,
    check_configuration,
    protocols,
    service,
)


def test_every_call_names_a_service_with_an_internal_api() -> None:
    for current in SERVICES:
        for callee in current.calls:
            assert service(callee).protocol is not None, f"{current.name} calls {callee}"


def test_services_are_built_after_the_services_they_call() -> None:
    order = [current.name for current in build_order()]
    assert sorted(order) == sorted(NAMES)
    for current in SERVICES:
        for callee in current.calls:
            assert order.index(callee) < order.index(current.name)


def test_callers_are_the_call_graph_read_backwards() -> None:
    assert callers("users") == ("gateway", "social_graph")
    assert callers("social_graph") == ("gateway", "news")
    assert callers("link_checker") == ()
    assert callers("gateway") == ()


def test_only_the_gateway_serves_no_protocol() -> None:
    assert [current.name for current in SERVICES if current.protocol is None] == ["gateway"]
    assert set(protocols()) == set(NAMES) - {"gateway"}
    for protocol in protocols().values():
        assert describe(protocol)  # a Protocol the transport can serve


def test_every_flag_names_settings_that_exist() -> None:
    fields = Settings.model_fields
    for current in SERVICES:
        for callee in current.calls:
            assert f"{callee}_url" in fields
        if current.database:
            assert f"{current.name}_database_url" in fields
            assert f"{current.name}_database_password" in fields
            assert importlib.util.find_spec(f"delinkcious.{current.name}.migrations")
        if current.redis:
            assert f"{current.name}_redis_url" in fields
            assert f"{current.name}_redis_password" in fields


def test_builders_exist_in_the_wiring() -> None:
    for name in ("gateway", "links", "users", "social_graph", "news", "link_checker"):
        assert inspect.iscoroutinefunction(getattr(delinkcious.wiring, f"build_{name}"))


def test_an_unknown_service_is_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="unknown service 'accounting'; one of gateway"):
        service("accounting")


def _settings(**values: str) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]


FULL = {
    "internal_tokens": "gateway=g-0123456789,links=l-0123456789,users=u-0123456789,"
    "social_graph=s-0123456789,news=n-0123456789,link_checker=c-0123456789",
    "links_url": "http://links:8080",
    "users_url": "http://users:8080",
    "social_graph_url": "http://social-graph:8080",
    "news_url": "http://news:8080",
    "nats_url": "nats://nats:4222",
    "links_database_url": "postgresql://links@postgres/links",
    "users_database_url": "postgresql://users@postgres/users",
    "social_graph_database_url": "postgresql://social_graph@postgres/social_graph",
    "news_redis_url": "redis://redis:6379/0",
    "secret_key": "k" * 32,
}


@pytest.mark.parametrize("name", NAMES)
def test_a_complete_configuration_runs_every_service(name: str) -> None:
    tokens = check_configuration(name, _settings(**FULL))
    assert name in tokens


@pytest.mark.parametrize(
    ("name", "missing", "reason"),
    [
        ("gateway", "news_url", "DELINKCIOUS_NEWS_URL is required: gateway calls news"),
        ("news", "nats_url", "DELINKCIOUS_NATS_URL is required"),
        ("users", "users_database_url", "DELINKCIOUS_USERS_DATABASE_URL is required"),
        ("news", "news_redis_url", "DELINKCIOUS_NEWS_DATABASE_URL (or DELINKCIOUS_NEWS_REDIS_URL)"),
        ("links", "secret_key", "DELINKCIOUS_SECRET_KEY is required: links signs page tokens"),
        ("news", "secret_key", "DELINKCIOUS_SECRET_KEY is required: news signs page tokens"),
        ("link_checker", "internal_tokens", "DELINKCIOUS_INTERNAL_TOKENS is required"),
    ],
)
def test_each_missing_requirement_is_named(name: str, missing: str, reason: str) -> None:
    settings = _settings(**{key: value for key, value in FULL.items() if key != missing})
    with pytest.raises(ConfigurationError) as caught:
        check_configuration(name, settings)
    assert reason in str(caught.value)


def test_a_database_password_joins_the_url_without_being_in_it() -> None:
    settings = _settings(
        links_database_url="postgresql://links@postgres:5432/links?ssl=require",
        links_database_password="p@ss word/1",
    )
    url = make_url(settings.database_url("links"))
    assert (url.username, url.password, url.host, url.database) == (
        "links",
        "p@ss word/1",
        "postgres",
        "links",
    )
    assert url.query == {"ssl": "require"}
    assert "p@ss" not in repr(settings)
    assert _settings(users_database_url="postgresql://u@h/users").database_url("users") == (
        "postgresql://u@h/users"
    )
