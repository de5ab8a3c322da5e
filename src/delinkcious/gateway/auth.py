"""Who is calling: the ``Access-Token`` header (as in the book) or ``Authorization: Bearer``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from delinkcious.model.errors import Unauthenticated
from delinkcious.model.users import UserManager

# Declared for the OpenAPI document (the "Authorize" button at /docs); read by hand below.
_ACCESS_TOKEN = APIKeyHeader(name="Access-Token", auto_error=False)
_BEARER = HTTPBearer(auto_error=False)


def access_token(
    request: Request,
    header_token: Annotated[str | None, Depends(_ACCESS_TOKEN)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> str:
    token = header_token or (bearer.credentials if bearer else None)
    if not token:
        raise Unauthenticated(
            "send your access token in the Access-Token header "
            "(or Authorization: Bearer); get one with POST /v1/sessions",
            code="missing_token",
        )
    return token.strip()


async def current_user(request: Request, token: Annotated[str, Depends(access_token)]) -> str:
    users: UserManager = request.app.state.users
    return await users.resolve_session(token)


AccessToken = Annotated[str, Depends(access_token)]
CurrentUser = Annotated[str, Depends(current_user)]
