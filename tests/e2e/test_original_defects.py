"""One test per defect of the Go original that this API could repeat."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Server, register_and_login
from tests.e2e.test_links import add, all_pages


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"url_regex": "golang"}, ["http://127.0.0.1:9/golang/doc"]),
        ({"title_regex": "^Py"}, ["http://127.0.0.1:9/python/"]),
        ({"description_regex": "sna.e"}, ["http://127.0.0.1:9/python/"]),
        ({"tag": "lang"}, ["http://127.0.0.1:9/python/", "http://127.0.0.1:9/golang/doc"]),
        ({"tag": "lang", "url_regex": "python"}, ["http://127.0.0.1:9/python/"]),
        ({"tag": "lang", "title_regex": "nothing matches"}, []),
    ],
)
def test_filters_reach_the_service(
    api: httpx.Client, auth: dict[str, str], params: dict[str, str], expected: list[str]
) -> None:
    """The original's gateway and service disagreed on parameter names: filters vanished."""
    add(
        api,
        auth,
        "http://127.0.0.1:9/golang/doc",
        title="Go docs",
        description="gopher",
        tags=["lang"],
    )
    add(
        api,
        auth,
        "http://127.0.0.1:9/python/",
        title="Python",
        description="a snake",
        tags=["lang"],
    )
    add(api, auth, "http://127.0.0.1:9/", title="Example", tags=["misc"])
    assert all_pages(api, auth, **params) == expected


def test_tags_come_back_from_the_database_after_a_restart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The original stored tags and never loaded them back."""
    server = Server(tmp_path_factory.mktemp("restart")).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as api:
            auth = register_and_login(api)
            add(api, auth, "http://127.0.0.1:9/t", tags=["b", "a", "c"])
    finally:
        server.stop()
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as api:
            links = api.get("/v1/links", headers=auth).json()["links"]
            assert [link["tags"] for link in links] == [["a", "b", "c"]]
            assert all_pages(api, auth, tag="b") == ["http://127.0.0.1:9/t"]
    finally:
        server.stop()


def test_paging_never_repeats_or_skips_when_links_arrive_between_pages(
    api: httpx.Client, auth: dict[str, str]
) -> None:
    """The original's one-second page tokens repeated rows at page borders."""
    originals = [f"http://127.0.0.1:9/orig/{i}" for i in range(25)]
    for url in originals:
        add(api, auth, url)
    seen: list[str] = []
    token = None
    added = 0
    while True:
        page = api.get(
            "/v1/links",
            params={"limit": 3, **({"start_token": token} if token else {})},
            headers=auth,
        ).json()
        seen += [link["url"] for link in page["links"]]
        token = page["next_page_token"]
        # Links saved while someone pages through must not shift the pages they read next.
        add(api, auth, f"http://127.0.0.1:9/new/{added}")
        added += 1
        if token is None:
            break
    assert len(seen) == len(set(seen))
    assert seen == list(reversed(originals))
