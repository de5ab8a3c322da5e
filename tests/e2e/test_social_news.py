"""The social loop over the public API: follow someone, they save, you read it in your news,
and the saved link's status leaves ``pending`` once the checker has looked at it."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import pytest

from tests.e2e.conftest import register_and_login
from tests.e2e.test_bad_input import assert_error
from tests.e2e.test_links import add

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float = 15.0) -> T:
    """Poll until ``check`` returns something truthy: events cross the bus asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


@pytest.fixture
def people(api: httpx.Client) -> dict[str, dict[str, str]]:
    """Three fresh users, alice, bob and carol (with a unique suffix), in that order."""
    suffix = secrets.token_hex(3)
    names = [f"alice{suffix}", f"bob{suffix}", f"carol{suffix}"]
    return {name: register_and_login(api, name) for name in names}


def news(api: httpx.Client, auth: dict[str, str], **params: str | int) -> dict[str, Any]:
    response = api.get("/v1/news", params=params, headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_follow_rules(api: httpx.Client, people: dict[str, dict[str, str]]) -> None:
    alice, bob, _carol = people
    headers = people[bob]
    follow = api.post("/v1/following", json={"followed": alice}, headers=headers)
    assert follow.status_code == 201
    assert follow.json() == {"following": [alice]}
    assert api.get("/v1/following", headers=headers).json() == {"following": [alice]}
    assert api.get("/v1/followers", headers=people[alice]).json() == {"followers": [bob]}
    twice = api.post("/v1/following", json={"followed": alice.upper()}, headers=headers)
    assert_error(twice, 409)
    assert_error(api.post("/v1/following", json={"followed": bob}, headers=headers), 400)
    assert_error(api.post("/v1/following", json={"followed": "nobody-here"}, headers=headers), 404)
    assert_error(api.post("/v1/following", json={}, headers=headers), 422)
    assert_error(api.post("/v1/following", json={"followed": alice}), 401)
    unfollow = api.delete("/v1/following", params={"followed": alice}, headers=headers)
    assert unfollow.status_code == 204
    assert_error(api.delete("/v1/following", params={"followed": alice}, headers=headers), 404)
    assert api.get("/v1/followers", headers=people[alice]).json() == {"followers": []}


def test_a_followed_users_links_reach_the_followers_news(
    api: httpx.Client, people: dict[str, dict[str, str]]
) -> None:
    alice, bob, carol = people
    assert api.post("/v1/following", json={"followed": alice}, headers=people[bob]).is_success
    url = f"http://127.0.0.1:9/{alice}/post"
    assert add(api, people[alice], url, title="Alice's find").status_code == 201
    api.put(
        "/v1/links", json={"url": url, "title": "Alice's find, retitled"}, headers=people[alice]
    )
    api.delete("/v1/links", params={"url": url}, headers=people[alice])

    def bobs_news() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = news(api, people[bob], limit=100)["events"]
        return events if len(events) == 3 else []

    events = eventually(bobs_news)
    assert [event["type"] for event in events] == ["link.deleted", "link.updated", "link.added"]
    assert {event["author"] for event in events} == {alice}
    assert {event["url"] for event in events} == {url}
    assert events[2]["title"] == "Alice's find"
    assert events[1]["title"] == "Alice's find, retitled"
    assert len({event["id"] for event in events}) == 3
    assert events[0]["timestamp"] >= events[1]["timestamp"] >= events[2]["timestamp"]
    # Only followers get it: not the author, not someone who does not follow her.
    assert news(api, people[alice])["events"] == []
    assert news(api, people[carol])["events"] == []


def test_news_pages_move_forward(api: httpx.Client, people: dict[str, dict[str, str]]) -> None:
    """The original's news paging always returned page 0."""
    alice, bob, _carol = people
    api.post("/v1/following", json={"followed": alice}, headers=people[bob])
    for i in range(7):
        add(api, people[alice], f"http://127.0.0.1:9/{alice}/{i}")
    eventually(lambda: len(news(api, people[bob], limit=100)["events"]) == 7)
    seen: list[str] = []
    token = None
    while True:
        page = news(api, people[bob], limit=3, **({"start_token": token} if token else {}))
        seen += [event["url"] for event in page["events"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == [f"http://127.0.0.1:9/{alice}/{i}" for i in range(6, -1, -1)]
    assert_error(api.get("/v1/news", params={"start_token": "forged"}, headers=people[bob]), 400)
    assert_error(api.get("/v1/news", params={"limit": 0}, headers=people[bob]), 422)
    assert_error(api.get("/v1/news"), 401)


class _Site(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200 if self.path == "/ok" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_saved_links_are_checked_in_the_background(
    api: httpx.Client, auth: dict[str, str], site: str
) -> None:
    assert add(api, auth, f"{site}/ok").json()["status"] == "pending"
    add(api, auth, f"{site}/missing")

    def statuses() -> dict[str, str]:
        links = api.get("/v1/links", headers=auth).json()["links"]
        found = {link["url"]: link["status"] for link in links}
        return found if "pending" not in found.values() else {}

    assert eventually(statuses) == {f"{site}/ok": "valid", f"{site}/missing": "invalid"}
