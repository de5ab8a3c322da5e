"""Errors across HTTP: one class→status map, one body shape, and their way back.

The status map lives here, not in the gateway, because both HTTP faces of the system
(the public gateway and the internal transport) must agree on it; the model itself
stays free of HTTP.
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from delinkcious.model import errors
from delinkcious.model.errors import DelinkciousError

STATUS: dict[type[DelinkciousError], int] = {
    errors.InvalidArgument: 400,
    errors.Unauthenticated: 401,
    errors.LimitExceeded: 403,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.Unavailable: 503,
}

# Only the model's own classes are ever rebuilt from a "type" a server sent.
DOMAIN_ERRORS: dict[str, type[DelinkciousError]] = {
    cls.__name__: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, DelinkciousError)
}


def status_for(error: DelinkciousError) -> int:
    """The most specific class in the map wins; an unmapped domain error is a 400."""
    return next((STATUS[cls] for cls in type(error).__mro__ if cls in STATUS), 400)


class RemoteError(Exception):
    """The remote side failed outside the domain: a bug there, or a version mismatch.

    Deliberately not a ``DelinkciousError``: the gateway answers it as a logged 500, as it
    would the same failure in-process, instead of blaming the user's request.
    """


class InternalAuthError(RemoteError, PermissionError):
    """A service refused this caller's internal token (401/403).

    Not ``Unauthenticated``: that would tell the end user their session is bad, when the
    fault is the deployment's token configuration. Never retried.
    """


# Types the transport itself writes; the client maps them back to these classes.
TRANSPORT_ERRORS: dict[str, type[RemoteError]] = {
    "InternalAuthError": InternalAuthError,
    "UnknownMethod": RemoteError,
    "InternalError": RemoteError,
}


class ErrorDetail(BaseModel):
    type: str
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_body(kind: str, code: str, message: str) -> bytes:
    body = ErrorBody(error=ErrorDetail(type=kind, code=code, message=message))
    return body.model_dump_json().encode()


def parse_error(content: bytes) -> ErrorDetail | None:
    """The error a response carries, or None when it is not ours (a proxy's page, say)."""
    try:
        return ErrorBody.model_validate_json(content).error
    except ValidationError:
        return None
