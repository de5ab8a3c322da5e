"""The gateway's access log: one line per request, route template, status, user, no secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request

from delinkcious.gateway.access_log import AccessLogMiddleware
from tests.support.logs import Captured, assert_line_fields, restored_logging

TOKEN = "tok_0123456789abcdef"


@pytest.fixture
def logs() -> Iterator[Captured]:
    with restored_logging():
        captured = Captured()
        captured.setup(service="gateway", level="INFO")
        yield captured


def toy_app() -> FastAPI:
    app = FastAPI()
    v1 = APIRouter(prefix="/v1")

    @v1.get("/links/{link_id}")
    async def get_link(link_id: int, request: Request) -> dict[str, int]:
        request.state.user = "alice"  # what gateway.auth.authenticate does
        return {"id": link_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app.include_router(v1)
    app.add_middleware(AccessLogMiddleware)
    return app


@pytest.fixture
async def client(logs: Captured) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=toy_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


async def test_one_line_per_request_with_the_route_template_and_user(
    logs: Captured, client: httpx.AsyncClient
) -> None:
    response = await client.get(
        f"/v1/links/42?start_token={TOKEN}", headers={"Access-Token": TOKEN}
    )
    assert response.status_code == 200
    [record] = logs.records()
    assert_line_fields(record)
    assert record["event"] == "request"
    assert record["level"] == "info"
    assert record["service"] == "gateway"
    assert record["http_method"] == "GET"
    assert record["route"] == "/v1/links/{link_id}"
    assert record["status"] == 200
    assert record["user"] == "alice"
    assert record["client"] == "127.0.0.1"
    assert isinstance(record["duration_ms"], float)
    assert "42" not in record["route"]
    assert TOKEN not in logs.text  # neither the query string nor a header is logged


async def test_unknown_routes_and_wrong_methods(logs: Captured, client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/nothing/here/99")).status_code == 404
    assert (await client.delete("/v1/links/7")).status_code == 405
    unmatched, wrong_method = logs.records()
    assert (unmatched["route"], unmatched["status"], unmatched["user"]) == ("unmatched", 404, None)
    assert (wrong_method["route"], wrong_method["status"]) == ("/v1/links/{link_id}", 405)


async def test_an_unhandled_error_is_a_500_line_at_error_level(
    logs: Captured, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/boom")).status_code == 500
    [record] = [record for record in logs.records() if record["event"] == "request"]
    assert (record["route"], record["status"], record["level"]) == ("/boom", 500, "error")


async def test_nothing_is_built_when_info_is_filtered_out(
    logs: Captured, client: httpx.AsyncClient
) -> None:
    logs.setup(service="gateway", level="WARNING")
    transport = httpx.ASGITransport(app=toy_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as quiet:
        assert (await quiet.get("/v1/links/1")).status_code == 200
    assert logs.text == ""
