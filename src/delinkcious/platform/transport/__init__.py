"""The generic HTTP transport: serve any model Protocol, and call it back over httpx.

``internal_router`` exposes an implementation under ``/internal/v1/{service}/{method}``;
``remote`` builds an object with the same Protocol whose calls go there. Neither has code
per method: both read the Protocol's signatures (``describe``).
"""

from delinkcious.platform.transport.auth import parse_tokens
from delinkcious.platform.transport.client import make_client, remote
from delinkcious.platform.transport.errors import (
    STATUS,
    InternalAuthError,
    RemoteError,
    status_for,
)
from delinkcious.platform.transport.introspection import Method, describe
from delinkcious.platform.transport.server import PREFIX, internal_router

__all__ = [
    "PREFIX",
    "STATUS",
    "InternalAuthError",
    "Method",
    "RemoteError",
    "describe",
    "internal_router",
    "make_client",
    "parse_tokens",
    "remote",
    "status_for",
]
