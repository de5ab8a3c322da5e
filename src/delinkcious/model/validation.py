"""Input rules of the domain, as pure functions that raise ``InvalidArgument``.

They live in the model so every transport (gateway, internal HTTP, in-process) enforces
exactly the same rules: the managers call them, never the transports alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from delinkcious.model.errors import InvalidArgument

MAX_URL = 2048
MAX_TITLE = 512
MAX_DESCRIPTION = 8192
MAX_TAGS = 32
MAX_TAG = 64
MAX_REGEX = 256
MAX_PAGE_SIZE = 100
MAX_EMAIL = 254
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

USERNAME_RE = re.compile(r"[a-z0-9_.-]{2,32}")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _check_length(name: str, value: str, maximum: int) -> None:
    if len(value) > maximum:
        raise InvalidArgument(
            f"{name} is longer than {maximum} characters", code=f"{name}_too_long"
        )


def normalize_username(username: str) -> str:
    """Usernames are case-insensitive: the canonical form is lower case."""
    canonical = username.strip().lower()
    if not USERNAME_RE.fullmatch(canonical):
        raise InvalidArgument(
            "username must be 2-32 characters of a-z, 0-9, '_', '.' or '-'", code="invalid_username"
        )
    return canonical


def check_email(email: str) -> str:
    email = email.strip()
    _check_length("email", email, MAX_EMAIL)
    if not EMAIL_RE.fullmatch(email):
        raise InvalidArgument("email is not a valid address", code="invalid_email")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidArgument(
            f"password must have at least {MIN_PASSWORD} characters", code="password_too_short"
        )
    _check_length("password", password, MAX_PASSWORD)


def check_url(url: str) -> str:
    """Accept only absolute http(s) URLs with a host, at most MAX_URL long."""
    url = url.strip()
    if not url:
        raise InvalidArgument("url is required", code="invalid_url")
    _check_length("url", url, MAX_URL)
    if _CONTROL_RE.search(url) or " " in url:
        raise InvalidArgument(
            "url must not contain spaces or control characters", code="invalid_url"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a malformed port
    except ValueError as exc:
        raise InvalidArgument(f"url is malformed: {exc}", code="invalid_url") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidArgument("url must start with http:// or https://", code="invalid_url")
    if not host:
        raise InvalidArgument("url must name a host", code="invalid_url")
    return url


def check_title(title: str) -> str:
    title = title.strip()
    if not title:
        raise InvalidArgument("title is required", code="invalid_title")
    _check_length("title", title, MAX_TITLE)
    return title


def check_description(description: str) -> str:
    _check_length("description", description, MAX_DESCRIPTION)
    return description


def check_tag(tag: str) -> str:
    tag = tag.strip()
    if not tag:
        raise InvalidArgument("tags must not be empty", code="invalid_tag")
    _check_length("tag", tag, MAX_TAG)
    if _CONTROL_RE.search(tag):
        raise InvalidArgument("tags must not contain control characters", code="invalid_tag")
    return tag


def check_tags(tags: Iterable[str]) -> frozenset[str]:
    checked = frozenset(check_tag(tag) for tag in tags)
    if len(checked) > MAX_TAGS:
        raise InvalidArgument(f"a link has at most {MAX_TAGS} tags", code="too_many_tags")
    return checked


def check_page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE_SIZE}", code="invalid_limit")
    return limit
