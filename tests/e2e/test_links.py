"""Links through the public API: add, list, filter, page, update, delete, isolation."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import register_and_login


def add(api: httpx.Client, auth: dict[str, str], url: str, **fields: object) -> httpx.Response:
    body = {"url": url, "title": fields.pop("title", f"title of {url}"), **fields}
    return api.post("/v1/links", json=body, headers=auth)


def all_pages(api: httpx.Client, auth: dict[str, str], **params: str) -> list[str]:
    urls: list[str] = []
    token = None
    while True:
        query = {**params, **({"start_token": token} if token else {})}
        page = api.get("/v1/links", params=query, headers=auth)
        assert page.status_code == 200, page.text
        urls += [link["url"] for link in page.json()["links"]]
        token = page.json()["next_page_token"]
        if token is None:
            return urls


def test_add_returns_the_link_pending(api: httpx.Client, auth: dict[str, str]) -> None:
    response = add(
        api, auth, "http://127.0.0.1:9/a", title="A", description="d", tags=["x", "y", "x"]
    )
    assert response.status_code == 201
    link = response.json()
    assert link["url"] == "http://127.0.0.1:9/a"
    assert (link["title"], link["description"], link["tags"]) == ("A", "d", ["x", "y"])
    assert link["status"] == "pending"
    assert link["created_at"] == link["updated_at"]


def test_second_add_of_same_url_is_409(api: httpx.Client, auth: dict[str, str]) -> None:
    assert add(api, auth, "http://127.0.0.1:9/dup").status_code == 201
    again = add(api, auth, "http://127.0.0.1:9/dup", title="other")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "link_exists"
    assert all_pages(api, auth) == ["http://127.0.0.1:9/dup"]


def test_list_is_newest_first_with_default_page_of_ten(
    api: httpx.Client, auth: dict[str, str]
) -> None:
    for i in range(12):
        add(api, auth, f"http://127.0.0.1:9/{i}")
    page = api.get("/v1/links", headers=auth).json()
    assert [link["url"] for link in page["links"]] == [
        f"http://127.0.0.1:9/{i}" for i in range(11, 1, -1)
    ]
    assert page["next_page_token"]
    assert len(api.get("/v1/links", params={"limit": 100}, headers=auth).json()["links"]) == 12


def test_update_changes_title_description_and_tags(api: httpx.Client, auth: dict[str, str]) -> None:
    add(api, auth, "http://127.0.0.1:9/u", title="old", tags=["keep", "drop"])
    response = api.put(
        "/v1/links",
        json={
            "url": "http://127.0.0.1:9/u",
            "title": "new",
            "description": "now described",
            "add_tags": ["added"],
            "remove_tags": ["drop"],
        },
        headers=auth,
    )
    assert response.status_code == 200
    link = response.json()
    assert (link["title"], link["description"]) == ("new", "now described")
    assert link["tags"] == ["added", "keep"]
    assert link["updated_at"] > link["created_at"]
    listed = api.get("/v1/links", headers=auth).json()["links"][0]
    assert listed == link


def test_delete_then_delete_again(api: httpx.Client, auth: dict[str, str]) -> None:
    add(api, auth, "http://127.0.0.1:9/d")
    first = api.delete("/v1/links", params={"url": "http://127.0.0.1:9/d"}, headers=auth)
    assert first.status_code == 204
    assert all_pages(api, auth) == []
    again = api.delete("/v1/links", params={"url": "http://127.0.0.1:9/d"}, headers=auth)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "link_not_found"


def test_a_user_never_reads_or_changes_another_users_links(api: httpx.Client) -> None:
    alice, bob = register_and_login(api), register_and_login(api)
    add(api, alice, "http://127.0.0.1:9/private", tags=["secret"])
    assert all_pages(api, bob) == []
    assert all_pages(api, bob, tag="secret") == []
    update = api.put(
        "/v1/links", json={"url": "http://127.0.0.1:9/private", "title": "mine"}, headers=bob
    )
    assert update.status_code == 404
    delete = api.delete("/v1/links", params={"url": "http://127.0.0.1:9/private"}, headers=bob)
    assert delete.status_code == 404
    # Bob may save the same url for himself: it is his own link, Alice's stays as it was.
    assert add(api, bob, "http://127.0.0.1:9/private", title="bob's").status_code == 201
    alices = api.get("/v1/links", headers=alice).json()["links"]
    assert [(link["title"], link["tags"]) for link in alices] == [
        ("title of http://127.0.0.1:9/private", ["secret"])
    ]


def test_page_token_from_one_user_is_refused_for_another(api: httpx.Client) -> None:
    alice, bob = register_and_login(api), register_and_login(api)
    for i in range(3):
        add(api, alice, f"http://127.0.0.1:9/{i}")
    token = api.get("/v1/links", params={"limit": 1}, headers=alice).json()["next_page_token"]
    stolen = api.get("/v1/links", params={"limit": 1, "start_token": token}, headers=bob)
    assert stolen.status_code == 400
    assert stolen.json()["error"]["code"] == "invalid_page_token"
