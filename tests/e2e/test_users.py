"""Accounts and sessions through the public API of a running ``delinkcious up``."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import new_username, register_and_login


def _error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    code: str = body["error"]["code"]
    return code


def test_register_returns_canonical_username(api: httpx.Client) -> None:
    name = new_username()
    response = api.post(
        "/v1/users",
        json={"username": name.upper(), "email": "x@example.com", "password": "long enough"},
    )
    assert response.status_code == 201
    assert response.json() == {"username": name, "email": "x@example.com"}


def test_usernames_are_unique_whatever_their_case(api: httpx.Client) -> None:
    name = new_username()
    register_and_login(api, name)
    again = api.post(
        "/v1/users",
        json={"username": name.upper(), "email": "y@example.com", "password": "long enough"},
    )
    assert again.status_code == 409
    assert _error_code(again) == "username_taken"


def test_login_with_wrong_password_or_unknown_user_is_401(api: httpx.Client) -> None:
    name = new_username()
    register_and_login(api, name)
    wrong = api.post("/v1/sessions", json={"username": name, "password": "not the password"})
    unknown = api.post("/v1/sessions", json={"username": new_username(), "password": "whatever1"})
    assert (wrong.status_code, unknown.status_code) == (401, 401)
    assert _error_code(wrong) == _error_code(unknown) == "invalid_credentials"


def test_logout_ends_only_that_session(api: httpx.Client) -> None:
    name = new_username()
    first = register_and_login(api, name)
    second_token = api.post(
        "/v1/sessions", json={"username": name, "password": "correct horse battery"}
    ).json()["access_token"]
    second = {"Authorization": f"Bearer {second_token}"}
    assert api.get("/v1/links", headers=first).status_code == 200
    assert api.delete("/v1/sessions/current", headers=first).status_code == 204
    revoked = api.get("/v1/links", headers=first)
    assert revoked.status_code == 401
    assert _error_code(revoked) == "invalid_token"
    assert api.get("/v1/links", headers=second).status_code == 200
    assert api.delete("/v1/sessions/current", headers=first).status_code == 401


def test_unknown_or_missing_token_is_401(api: httpx.Client) -> None:
    assert _error_code(api.get("/v1/links")) == "missing_token"
    forged = api.get("/v1/links", headers={"Access-Token": "x" * 43})
    assert forged.status_code == 401
    assert _error_code(forged) == "invalid_token"
    bearer = api.get("/v1/links", headers={"Authorization": "Bearer nope"})
    assert bearer.status_code == 401


def test_openapi_document_and_docs_page(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    assert {"/v1/users", "/v1/sessions", "/v1/sessions/current", "/v1/links"} <= set(spec["paths"])
    assert api.get("/docs").status_code == 200


def test_health_and_readiness(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
