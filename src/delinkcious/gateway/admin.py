"""``GET /admin/routes``: the route table in force, each replica's health and version.

For operators, with the ``admin`` entry of ``DELINKCIOUS_INTERNAL_TOKENS`` as a bearer
token (401 without one, 403 with another); not in the public API's document.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from delinkcious.gateway.responses import JsonResponse
from delinkcious.platform.routing.reload import RouteFile
from delinkcious.platform.routing.router import Router
from delinkcious.platform.transport.auth import TokenGuard, bearer

ADMIN = "admin"


def install_admin(
    app: FastAPI, router: Router, routes: RouteFile | None, tokens: dict[str, str]
) -> None:
    guard = TokenGuard({ADMIN: tokens[ADMIN]} if ADMIN in tokens else {})

    @app.get("/admin/routes", include_in_schema=False)
    async def admin_routes(request: Request) -> JsonResponse:
        secret = bearer(request.headers.get("authorization"))
        if secret is None:
            return _error(401, "unauthenticated", "send Authorization: Bearer <admin token>")
        if guard.caller(secret) != ADMIN:
            return _error(403, "forbidden", "this token may not read the route table")
        return JsonResponse(
            {
                "file": str(routes.path) if routes is not None else None,
                "refused": routes.error if routes is not None else None,
                **router.describe(),
            }
        )


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status_code=status)
