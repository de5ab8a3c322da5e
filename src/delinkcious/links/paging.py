"""Opaque, signed page tokens.

A token names the last row a page returned, the user and the filter it was issued for,
and when it expires; an HMAC makes any forged or edited token a clear 400, never a
silent jump to another position or another user's data.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time

import orjson

from delinkcious.links.store import Cursor
from delinkcious.model.errors import InvalidArgument
from delinkcious.model.links import LinkFilter

_MAX_TOKEN = 512


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scope(username: str, link_filter: LinkFilter) -> str:
    """A digest of what the listing is of, so a token cannot be reused on another query."""
    parts = (
        username,
        link_filter.url_regex,
        link_filter.title_regex,
        link_filter.description_regex,
        link_filter.tag,
    )
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:16]


class PageTokens:
    def __init__(self, secret: bytes, ttl_seconds: int = 86_400) -> None:
        if len(secret) < 16:
            raise ValueError("the page token secret must be at least 16 bytes")
        self._secret = secret
        self._ttl = ttl_seconds

    def _sign(self, payload: bytes) -> str:
        return _b64encode(hmac.new(self._secret, payload, hashlib.sha256).digest()[:16])

    def encode(self, username: str, link_filter: LinkFilter, cursor: Cursor) -> str:
        payload = orjson.dumps(
            {
                "s": _scope(username, link_filter),
                "t": cursor.created_at.isoformat(),
                "i": cursor.id,
                "e": int(time.time()) + self._ttl,
            }
        )
        return f"{_b64encode(payload)}.{self._sign(payload)}"

    def decode(self, token: str, username: str, link_filter: LinkFilter) -> Cursor:
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
        if _b64encode(payload) != body:
            raise invalid
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise invalid
        data = orjson.loads(payload)
        if data["e"] < time.time():
            raise InvalidArgument(
                "start_token has expired; list again from the first page", code="expired_page_token"
            )
        if data["s"] != _scope(username, link_filter):
            raise InvalidArgument(
                "start_token was issued for another query", code="invalid_page_token"
            )
        return Cursor(created_at=dt.datetime.fromisoformat(data["t"]), id=data["i"])
