"""Every kind of bad input gets a clear 4xx JSON error and changes nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.test_links import add, all_pages

LONG = "x" * 3000
BAD_ADDS = [
    ({"title": "no url"}, 422),
    ({"url": "http://127.0.0.1:9/n", "title": 5}, 422),
    ({"url": ["http://127.0.0.1:9/n"], "title": "t"}, 422),
    ({"url": "http://127.0.0.1:9/n", "title": "t", "tags": "not-a-list"}, 422),
    ({"url": "http://127.0.0.1:9/n", "title": "t", "unknown": 1}, 422),
    ({"url": "ftp://example.com/file", "title": "t"}, 400),
    ({"url": "javascript:alert(1)", "title": "t"}, 400),
    ({"url": "https://", "title": "t"}, 400),
    ({"url": "http://127.0.0.1:9:99999/", "title": "t"}, 400),
    ({"url": "http://127.0.0.1:9/" + LONG, "title": "t"}, 400),
    ({"url": "http://127.0.0.1:9/n", "title": "t" * 513}, 400),
    ({"url": "http://127.0.0.1:9/n", "title": "   "}, 400),
    ({"url": "http://127.0.0.1:9/n", "title": "t", "description": "d" * 8193}, 400),
    ({"url": "http://127.0.0.1:9/n", "title": "t", "tags": [f"t{i}" for i in range(33)]}, 400),
    ({"url": "http://127.0.0.1:9/n", "title": "t", "tags": ["x" * 65]}, 400),
    ({"url": "http://127.0.0.1:9/n", "title": "t", "tags": [""]}, 400),
]
BAD_LISTS = [
    ({"url_regex": "a("}, 400),
    ({"title_regex": "((a{100}){100}){100}"}, 400),
    ({"description_regex": "a" * 257}, 400),
    ({"tag": "x" * 65}, 400),
    ({"limit": 0}, 422),
    ({"limit": 101}, 422),
    ({"limit": "ten"}, 422),
    ({"start_token": "forged"}, 400),
    ({"start_token": "eyJzIjoiYWJjIn0.AAAAAAAAAAAAAAAAAAAAAA"}, 400),
    ({"sort": "title"}, 400),
]


@pytest.fixture
def seeded(api: httpx.Client, auth: dict[str, str]) -> list[str]:
    add(api, auth, "http://127.0.0.1:9/seed", tags=["seed"])
    return all_pages(api, auth)


def assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] and body["error"]["message"], body


@pytest.mark.parametrize(("body", "status"), BAD_ADDS)
def test_bad_add_is_refused_and_changes_nothing(
    api: httpx.Client, auth: dict[str, str], seeded: list[str], body: dict[str, object], status: int
) -> None:
    assert_error(api.post("/v1/links", json=body, headers=auth), status)
    assert all_pages(api, auth) == seeded


@pytest.mark.parametrize(("params", "status"), BAD_LISTS)
def test_bad_list_query_is_refused(
    api: httpx.Client,
    auth: dict[str, str],
    seeded: list[str],
    params: dict[str, str | int],
    status: int,
) -> None:
    assert_error(api.get("/v1/links", params=params, headers=auth), status)


def test_pathological_regex_runs_in_linear_time(
    api: httpx.Client, auth: dict[str, str], seeded: list[str]
) -> None:
    # Catastrophic on a backtracking engine; RE2 answers at once.
    add(api, auth, "http://127.0.0.1:9/" + "a" * 1500 + "!")
    response = api.get("/v1/links", params={"url_regex": "(a+)+$"}, headers=auth, timeout=5)
    assert response.status_code == 200
    assert response.json()["links"] == []


def test_bad_updates_and_deletes_change_nothing(
    api: httpx.Client, auth: dict[str, str], seeded: list[str]
) -> None:
    before = api.get("/v1/links", headers=auth).json()
    assert_error(
        api.put(
            "/v1/links",
            json={"url": "http://127.0.0.1:9/seed", "add_tags": [f"t{i}" for i in range(40)]},
            headers=auth,
        ),
        400,
    )
    assert_error(
        api.put("/v1/links", json={"url": "http://127.0.0.1:9/seed", "title": ""}, headers=auth),
        400,
    )
    assert_error(
        api.put("/v1/links", json={"url": "http://127.0.0.1:9/none", "title": "t"}, headers=auth),
        404,
    )
    assert_error(api.put("/v1/links", json={"title": "t"}, headers=auth), 422)
    assert_error(api.delete("/v1/links", headers=auth), 422)
    assert_error(api.delete("/v1/links", params={"url": "notaurl"}, headers=auth), 400)
    assert api.get("/v1/links", headers=auth).json() == before


def test_bad_registrations(api: httpx.Client) -> None:
    for body, status in [
        ({"username": "a", "email": "a@example.com", "password": "long enough"}, 400),
        ({"username": "has space", "email": "a@example.com", "password": "long enough"}, 400),
        ({"username": "x" * 33, "email": "a@example.com", "password": "long enough"}, 400),
        ({"username": "okname", "email": "not-an-email", "password": "long enough"}, 400),
        ({"username": "okname", "email": "a@example.com", "password": "short"}, 400),
        ({"username": "okname", "email": "a@example.com"}, 422),
        ({"username": 12, "email": "a@example.com", "password": "long enough"}, 422),
    ]:
        assert_error(api.post("/v1/users", json=body), status)
    # None of them created the user.
    login = api.post("/v1/sessions", json={"username": "okname", "password": "long enough"})
    assert login.status_code == 401


def test_malformed_bodies(api: httpx.Client, auth: dict[str, str]) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    assert_error(api.post("/v1/links", content=b"{not json", headers=headers), 422)
    assert_error(api.post("/v1/links", content=b"[1, 2]", headers=headers), 422)
    form = api.post(
        "/v1/links",
        content=b"url=x",
        headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(form, 415)
    huge = api.post("/v1/links", content=b"[" + b"1," * 600_000 + b"1]", headers=headers)
    assert_error(huge, 413)


def test_unknown_route_and_method_are_json_errors(api: httpx.Client) -> None:
    assert_error(api.get("/v1/nothing"), 404)
    assert_error(api.patch("/v1/links"), 405)
