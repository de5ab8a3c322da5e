"""Serves any object implementing a model Protocol under ``/internal/v1/{service}/{method}``."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from fastapi import APIRouter, Request, Response
from opentelemetry import context, propagate
from pydantic import ValidationError

from delinkcious.model.errors import DelinkciousError
from delinkcious.platform import served_by
from delinkcious.platform.transport.auth import TokenGuard, bearer
from delinkcious.platform.transport.errors import error_body, status_for
from delinkcious.platform.transport.introspection import describe

log = logging.getLogger("delinkcious.transport")

PREFIX = "/internal/v1"
_SERVICE = re.compile(r"[a-z0-9_-]+")
_JSON = "application/json"


def _error(status: int, kind: str, code: str, message: str) -> Response:
    return Response(error_body(kind, code, message), status_code=status, media_type=_JSON)


def _describe(exc: ValidationError) -> str:
    """Where and what, never the input: arguments may hold passwords or session tokens."""
    found = exc.errors(include_url=False, include_context=False, include_input=False)
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
        for error in found[:5]
    )


def internal_router(
    service: str,
    protocol: type,
    implementation: object,
    tokens: Mapping[str, str],
    version: str | None = None,
) -> APIRouter:
    """One route per Protocol: ``POST {PREFIX}/{service}/{method}`` with the arguments by name.

    Answers ``200 {"result": ...}``, or ``{"error": {"type", "code", "message"}}`` with the
    gateway's status for a domain error, 422 for a malformed body, 404 for an unknown method,
    401/403 for a missing/unknown token. Caller authenticated first: strangers learn nothing.
    """
    if not _SERVICE.fullmatch(service):
        raise ValueError(f"service name {service!r} must be lower-case a-z, 0-9, '_' or '-'")
    methods = describe(protocol)
    # Bound once: dispatch is one dict lookup. A missing method fails here, at startup.
    handlers = {name: getattr(implementation, name) for name in methods}
    guard = TokenGuard(tokens)
    own = (service, version) if version is not None else None
    router = APIRouter()

    @router.post(f"{PREFIX}/{service}/{{method}}", include_in_schema=False)
    async def call(method: str, request: Request) -> Response:
        secret = bearer(request.headers.get("authorization"))
        if secret is None:
            response = _error(
                401, "InternalAuthError", "unauthenticated", "send Authorization: Bearer <token>"
            )
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        caller = guard.caller(secret)
        if caller is None:
            log.warning("refused an internal call to %s.%s: unknown token", service, method)
            return _error(403, "InternalAuthError", "forbidden", "this token is not accepted")
        request.state.caller = caller
        spec = methods.get(method)
        if spec is None:
            return _error(404, "UnknownMethod", "unknown_method", f"{service} has no {method}")
        try:
            arguments = spec.arguments.model_validate_json(await request.body())
        except ValidationError as exc:
            return _error(422, "InvalidArgument", "validation_error", _describe(exc))
        kwargs = {name: getattr(arguments, name) for name in arguments.model_fields_set}
        attached = context.attach(propagate.extract(request.headers))
        # Which versions served this call, this one's and its callees': for the caller.
        served, collecting = served_by.collect(own)
        try:
            content = spec.encode_result(await handlers[method](**kwargs))
        except DelinkciousError as exc:
            return _error(status_for(exc), type(exc).__name__, exc.code, exc.message)
        except Exception:
            log.exception("%s.%s failed (called by %s)", service, method, caller)
            return _error(500, "InternalError", "internal", "internal error; it has been logged")
        finally:
            served_by.stop(collecting)
            context.detach(attached)
        return Response(
            content, media_type=_JSON, headers={served_by.HEADER: served_by.render(served)}
        )

    return router
