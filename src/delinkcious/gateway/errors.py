"""Every failure leaves the gateway as ``{"error": {"code", "message"}}`` with a fitting status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from delinkcious.gateway.responses import JsonResponse
from delinkcious.model import errors
from delinkcious.platform.transport.errors import status_for

log = logging.getLogger("delinkcious.gateway")


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status_code=status)


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(item) for item in error.get("loc", ()) if item != "body")
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is malformed"


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.DelinkciousError)
    async def domain_error(_: Request, exc: errors.DelinkciousError) -> JsonResponse:
        status = status_for(exc)
        return error_response(status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JsonResponse:
        body_errors = any(error.get("loc", ("",))[0] == "body" for error in exc.errors())
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if body_errors and media_type not in ("application/json", ""):
            return error_response(
                415,
                "unsupported_media_type",
                "send the body as JSON (Content-Type: application/json)",
            )
        return error_response(422, "validation_error", _describe(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JsonResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JsonResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal error; it has been logged")
