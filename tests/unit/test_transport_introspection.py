"""What the transport reads from the model's Protocols, and the internal token syntax."""

from __future__ import annotations

from typing import Protocol

import httpx
import pytest

from delinkcious.model.checker import CheckResult, LinkChecker
from delinkcious.model.errors import (
    AlreadyExists,
    DelinkciousError,
    InvalidArgument,
    LimitExceeded,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from delinkcious.model.links import (
    AddLinkRequest,
    GetLinksRequest,
    GetLinksResult,
    Link,
    LinkManager,
    UpdateLinkRequest,
)
from delinkcious.model.markers import is_idempotent
from delinkcious.model.news import GetNewsRequest, GetNewsResult, NewsManager
from delinkcious.model.social import SocialGraphManager
from delinkcious.model.users import User, UserManager
from delinkcious.platform.transport import describe, parse_tokens, remote, status_for

# protocol -> method name -> (parameters, return annotation, idempotent)
SIGNATURES: dict[type, dict[str, tuple[dict[str, object], object, bool]]] = {
    LinkManager: {
        "get_links": ({"request": GetLinksRequest}, GetLinksResult, True),
        "add_link": ({"request": AddLinkRequest}, Link, False),
        "update_link": ({"request": UpdateLinkRequest}, Link, False),
        "delete_link": ({"username": str, "url": str}, type(None), False),
    },
    UserManager: {
        "register": ({"username": str, "email": str, "password": str}, User, False),
        "login": ({"username": str, "password": str}, str, False),
        "logout": ({"token": str}, type(None), False),
        "get_user": ({"username": str}, User, True),
        "resolve_session": ({"token": str}, str, True),
    },
    SocialGraphManager: {
        "follow": ({"followed": str, "follower": str}, type(None), False),
        "unfollow": ({"followed": str, "follower": str}, type(None), False),
        "get_following": ({"username": str}, list[str], True),
        "get_followers": ({"username": str}, list[str], True),
    },
    NewsManager: {"get_news": ({"request": GetNewsRequest}, GetNewsResult, True)},
    LinkChecker: {"check_link": ({"url": str}, CheckResult, True)},
}


@pytest.mark.parametrize("protocol", list(SIGNATURES), ids=lambda p: p.__name__)
def test_the_model_protocols_are_read_as_declared(protocol: type) -> None:
    methods = describe(protocol)
    expected = SIGNATURES[protocol]
    assert set(methods) == set(expected)
    for name, (parameters, returns, idempotent) in expected.items():
        method = methods[name]
        assert method.name == name
        assert dict(method.parameters) == parameters  # in declaration order, too
        assert list(method.parameters) == list(parameters)
        assert method.returns == returns
        assert method.idempotent is idempotent is is_idempotent(getattr(protocol, name))


def test_descriptions_are_built_once_and_read_only() -> None:
    assert describe(LinkManager) is describe(LinkManager)
    with pytest.raises(TypeError):
        describe(LinkManager)["drop"] = describe(LinkManager)["get_links"]  # type: ignore[index]


def test_arguments_travel_by_name_and_only_as_given() -> None:
    get_links = describe(LinkManager)["get_links"]
    request = GetLinksRequest("alice", limit=3)
    body = get_links.encode_arguments({"request": request})
    assert dict(get_links.arguments.model_validate_json(body))["request"] == request
    assert get_links.encode_result(GetLinksResult([], None)) == (
        b'{"result":{"links":[],"next_page_token":null}}'
    )


class Sync(Protocol):
    def ping(self) -> None: ...


class Unannotated(Protocol):
    async def ping(self, value) -> None: ...  # type: ignore[no-untyped-def]


class NoReturn(Protocol):
    async def ping(self, value: int): ...  # type: ignore[no-untyped-def]


class Starred(Protocol):
    async def ping(self, *values: int) -> None: ...


class Positional(Protocol):
    async def ping(self, value: int, /) -> None: ...


class Empty(Protocol):
    def _private(self) -> None: ...


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        (Sync, "must be async"),
        (Unannotated, "has no annotation"),
        (NoReturn, "no return annotation"),
        (Starred, "cannot be sent by name"),
        (Positional, "cannot be sent by name"),
        (Empty, "no public async methods"),
    ],
)
def test_what_cannot_travel_is_refused_up_front(protocol: type, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        describe(protocol)


@pytest.mark.parametrize("protocol", list(SIGNATURES), ids=lambda p: p.__name__)
def test_a_remote_implements_its_protocol_and_keeps_the_marks(protocol: type) -> None:
    client = httpx.AsyncClient()
    proxy: object = remote(protocol, "svc", "http://127.0.0.1:1", "s3cr3t", client)
    assert isinstance(proxy, protocol)
    assert not any(isinstance(proxy, other) for other in SIGNATURES if other is not protocol)
    for name in SIGNATURES[protocol]:
        assert is_idempotent(getattr(proxy, name)) is is_idempotent(getattr(protocol, name))
    assert "s3cr3t" not in repr(proxy)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidArgument("x"), 400),
        (Unauthenticated("x"), 401),
        (LimitExceeded("x"), 403),
        (NotFound("x"), 404),
        (AlreadyExists("x"), 409),
        (Unavailable("x"), 503),
        (DelinkciousError("x"), 400),
    ],
)
def test_domain_errors_have_the_gateway_statuses(error: DelinkciousError, status: int) -> None:
    assert status_for(error) == status


class StaleLink(NotFound):
    """A subclass keeps its parent's status."""


def test_a_subclass_keeps_its_parents_status() -> None:
    assert status_for(StaleLink("gone")) == 404


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", {}),
        ("  ", {}),
        ("gateway=s3cr3t", {"gateway": "s3cr3t"}),
        ("gateway=s3cr3t,news=xyz", {"gateway": "s3cr3t", "news": "xyz"}),
        (" gateway = s3cr3t , news=xyz ", None),  # spaces inside an entry are refused
        ("gateway=s3cr3t, news=xyz", {"gateway": "s3cr3t", "news": "xyz"}),
        ("link_checker=YWJj==", {"link_checker": "YWJj=="}),  # base64 padding is fine
    ],
)
def test_parse_tokens(text: str, tokens: dict[str, str] | None) -> None:
    if tokens is None:
        with pytest.raises(ValueError):
            parse_tokens(text)
    else:
        assert parse_tokens(text) == tokens


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gateway", "entry 1 must be caller=secret"),
        ("gateway=s3cr3t,", "entry 2 must be caller=secret"),
        ("gateway=s3cr3t,,news=x", "entry 2 must be caller=secret"),
        ("=s3cr3t", "caller name"),
        ("gate way=s3cr3t", "caller name"),
        ("gateway=", r"entry 1 \(gateway\): the secret"),
        ("gateway=sécret", "visible ASCII"),
        ("gateway=a,gateway=b", "caller gateway is listed twice"),
        ("gateway=same,news=same", "callers gateway and news share a secret"),
    ],
)
def test_parse_tokens_explains_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_tokens(text)
    for secret in ("s3cr3t", "sécret", "same"):
        assert secret not in str(caught.value)
