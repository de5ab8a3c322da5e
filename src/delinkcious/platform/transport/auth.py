"""Who may call a service's internal API: named shared secrets, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SECRET = re.compile(r"[\x21-\x7e]+")  # visible ASCII: it travels in an HTTP header


def parse_tokens(text: str) -> dict[str, str]:
    """``"gateway=s3cr3t,news=xyz"`` → ``{"gateway": "s3cr3t", "news": "xyz"}``.

    Blank text is no tokens (every call refused). Errors name the entry by position and
    caller, never by its secret, so they are safe to log.
    """
    tokens: dict[str, str] = {}
    if not text.strip():
        return tokens
    for position, entry in enumerate(text.split(","), 1):
        name, sep, secret = entry.strip().partition("=")
        where = f"internal token entry {position}"
        if not sep:
            raise ValueError(f"{where} must be caller=secret")
        if not _NAME.fullmatch(name):
            raise ValueError(f"{where}: the caller name must be 1-64 of A-Z a-z 0-9 _ . -")
        if not _SECRET.fullmatch(secret):
            raise ValueError(f"{where} ({name}): the secret must be visible ASCII, no spaces")
        if name in tokens:
            raise ValueError(f"{where}: caller {name} is listed twice")
        twin = next((other for other, known in tokens.items() if known == secret), None)
        if twin is not None:
            raise ValueError(f"{where}: callers {twin} and {name} share a secret")
        tokens[name] = secret
    return tokens


def _digest(secret: bytes) -> bytes:
    """Comparing digests keeps even a secret's length out of the timing."""
    return hashlib.sha256(secret).digest()


class TokenGuard:
    """Maps a presented bearer secret to its caller's name; no tokens means nobody."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._known = [(name, _digest(secret.encode())) for name, secret in tokens.items()]

    def caller(self, presented: str) -> str | None:
        digest = _digest(presented.encode("latin-1"))  # header values arrive latin-1-decoded
        caller = None
        for name, known in self._known:  # no early exit: every secret costs the same
            if hmac.compare_digest(digest, known):
                caller = name
        return caller


def bearer(authorization: str | None) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` header, or None."""
    scheme, _, secret = (authorization or "").partition(" ")
    secret = secret.strip()
    return secret if scheme.lower() == "bearer" and secret else None
