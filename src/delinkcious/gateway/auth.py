"""Who is calling: the ``Access-Token`` header (as in the book) or ``Authorization: Bearer``.

Read straight from the request rather than through FastAPI's dependency tree: on the hot
read paths that tree cost more than the database query. The OpenAPI document still shows
both schemes (``SECURITY`` on each route, ``SECURITY_SCHEMES`` in the components).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from delinkcious.model.errors import Unauthenticated
from delinkcious.model.users import UserManager
from delinkcious.platform.routing.router import ROUTING_KEY

SECURITY_SCHEMES: dict[str, Any] = {
    "AccessToken": {"type": "apiKey", "in": "header", "name": "Access-Token"},
    "Bearer": {"type": "http", "scheme": "bearer"},
}
SECURITY: dict[str, Any] = {"security": [{"AccessToken": []}, {"Bearer": []}]}


def access_token(request: Request) -> str:
    token = request.headers.get("access-token")
    if not token:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        token = credentials if scheme.lower() == "bearer" else ""
    token = token.strip()
    if not token:
        raise Unauthenticated(
            "send your access token in the Access-Token header "
            "(or Authorization: Bearer); get one with POST /v1/sessions",
            code="missing_token",
        )
    return token


async def authenticate(request: Request) -> str:
    """The caller's username, or Unauthenticated (401)."""
    users: UserManager = request.app.state.users
    username = await users.resolve_session(access_token(request))
    request.state.user = username  # for the access log
    ROUTING_KEY.set(username)  # the traffic shaper keeps each user on one version
    return username
