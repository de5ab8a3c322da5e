"""Opaque, signed, expiring page tokens, bound to what they list.

The caller names the scope (whose listing, of what) and the small JSON object to carry,
so every cursor-paged listing (links, news) uses this one codec. A forged, edited, foreign
or stale token is a clear ``InvalidArgument``, never a silent jump to another position or
to another user's data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any, TypedDict

import orjson

from delinkcious.model.errors import InvalidArgument

_MAX_TOKEN = 512


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _digest(scope: str) -> str:
    """Scopes travel hashed: a token does not spell out whose listing it belongs to."""
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


class _Sealed(TypedDict):
    """What a token carries, under its signature."""

    s: str  # the scope's digest
    e: int  # expiry, in seconds since the epoch
    d: dict[str, Any]  # the caller's data


class SignedTokens:
    def __init__(
        self,
        secret: bytes,
        ttl_seconds: int = 86_400,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the page token secret must be at least 16 bytes")
        self._secret = secret
        self._ttl = ttl_seconds
        self._clock = clock

    def _sign(self, payload: bytes) -> str:
        return _b64encode(hmac.new(self._secret, payload, hashlib.sha256).digest()[:16])

    def seal(self, scope: str, data: dict[str, Any]) -> str:
        sealed: _Sealed = {"s": _digest(scope), "e": int(self._clock()) + self._ttl, "d": data}
        payload = orjson.dumps(sealed)
        return f"{_b64encode(payload)}.{self._sign(payload)}"

    def open(self, token: str, scope: str) -> dict[str, Any]:
        """The data sealed in ``token`` for ``scope``; InvalidArgument for anything else."""
        invalid = InvalidArgument(
            "start_token is not a valid page token", code="invalid_page_token"
        )
        # Non-ASCII would make compare_digest raise TypeError; a non-canonical body (junk the
        # lenient base64 decoder skips) would let an edited token pass.
        if len(token) > _MAX_TOKEN or not token.isascii() or token.count(".") != 1:
            raise invalid
        body, signature = token.split(".")
        try:
            payload = _b64decode(body)
        except ValueError:
            raise invalid from None
        if _b64encode(payload) != body or not hmac.compare_digest(signature, self._sign(payload)):
            raise invalid
        sealed: _Sealed = orjson.loads(payload)  # signed by seal(): it has this shape
        # Scope first: a token of another listing is foreign, however old it is.
        if sealed["s"] != _digest(scope):
            raise InvalidArgument(
                "start_token was issued for another listing", code="invalid_page_token"
            )
        if sealed["e"] < self._clock():
            raise InvalidArgument(
                "start_token has expired; list again from the first page", code="expired_page_token"
            )
        return sealed["d"]
