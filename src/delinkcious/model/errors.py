"""Domain errors shared by every service.

Each carries a stable machine-readable ``code``; transports map the class to a status
(HTTP 4xx at the gateway) so a caller sees the same error whether the manager runs
in-process or behind HTTP.
"""


class DelinkciousError(Exception):
    """Base of every error a manager raises on purpose."""

    code = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(DelinkciousError):
    """The request breaks a rule of the domain (size, format, unknown page token...)."""

    code = "invalid_argument"


class NotFound(DelinkciousError):
    code = "not_found"


class AlreadyExists(DelinkciousError):
    code = "already_exists"


class Unauthenticated(DelinkciousError):
    """No valid identity: bad credentials, unknown, expired or revoked session."""

    code = "unauthenticated"


class LimitExceeded(DelinkciousError):
    """A per-user quota (such as the link cap) would be exceeded."""

    code = "limit_exceeded"


class Unavailable(DelinkciousError):
    """A dependency the call needs cannot be reached now; retrying later may work."""

    code = "unavailable"
