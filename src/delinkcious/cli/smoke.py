"""``delinkcious smoke``: drive a running gateway through a user's life, step by step.

The book's smoke test, made useful in a pipeline: named steps, one line each with its
duration, the first failure named with its cause (HTTP status and the API's error code and
message, or the connection error), a clean-up that runs even after a failure, and an exit
code a script can test (0 passed, 1 failed, 2 usage error, 130 interrupted). Only the public
``/v1`` API is used, so it works against any deployment: ``delinkcious up``, staging, a canary.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import click
import httpx

REQUEST_TIMEOUT = 10.0
"""Seconds for any single HTTP call (the polls have their own ``--timeout``)."""

FIRST_POLL_DELAY = 0.05
MAX_POLL_DELAY = 0.5
REDACTED = "[redacted]"


class StepFailed(Exception):
    """A step's check did not hold; ``reason`` is what gets printed after the step's name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class SmokeUser:
    name: str
    password: str
    token: str | None = None

    @classmethod
    def throwaway(cls) -> SmokeUser:
        return cls(name=f"smoke-{secrets.token_hex(5)}", password=secrets.token_urlsafe(18))

    @property
    def email(self) -> str:
        return f"{self.name}@example.com"


def _error_detail(response: httpx.Response) -> str:
    """The API's ``{"error": {code, message}}`` when there is one, else a short body excerpt."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = data["error"].get("code")
        message = data["error"].get("message")
        return ": " + ", ".join(str(part) for part in (code, message) if part)
    text = " ".join(response.text.split())
    if not text:
        return ""
    return f": {text[:160]}{'…' if len(text) > 160 else ''}"


def _where(method: str, path: str, params: dict[str, str] | None) -> str:
    """``GET /v1/links?tag=smoke-…``: the call, as a person would write it."""
    return f"{method} {path}" + (f"?{urlencode(params, safe=':/')}" if params else "")


class Api:
    """The public API over one pooled httpx client; every failure becomes a ``StepFailed``."""

    def __init__(self, client: httpx.Client, base_url: str) -> None:
        self.client = client
        self.base_url = base_url

    def call(
        self,
        method: str,
        path: str,
        *,
        expect: int,
        token: str | None = None,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {"Access-Token": token} if token else None
        where = _where(method, path, params)
        try:
            response = self.client.request(method, path, json=json, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            raise StepFailed(
                f"{where}: timed out after {REQUEST_TIMEOUT:g} s ({type(exc).__name__})"
            ) from None
        except httpx.ConnectError as exc:
            raise StepFailed(
                f"{where}: connection error: cannot connect to {self.base_url} "
                f"({str(exc) or 'refused'})"
            ) from None
        except httpx.TransportError as exc:
            raise StepFailed(f"{where}: connection error: {type(exc).__name__}: {exc}") from None
        if response.status_code != expect:
            raise StepFailed(
                f"{where} answered {response.status_code} (expected {expect})"
                f"{_error_detail(response)}"
            )
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.call(method, path, **kwargs)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            where = _where(method, path, kwargs.get("params"))
            raise StepFailed(
                f"{where} answered {response.status_code} with a body that is not a JSON object"
            )
        return data


class Smoke:
    """The steps, their shared state, and the clean-up of whatever they created."""

    def __init__(
        self,
        api: Api,
        *,
        base_url: str,
        link_url: str | None,
        timeout: float,
        echo: Callable[[str], None],
        marks: tuple[str, str],
    ) -> None:
        self.api = api
        self.timeout = timeout
        self.echo = echo
        self.ok, self.ko = marks
        self.run_id = secrets.token_hex(4)
        self.author = SmokeUser.throwaway()
        self.follower = SmokeUser.throwaway()
        self.link_url = link_url or f"{base_url}/healthz?smoke={self.run_id}"
        self.tag = f"smoke-{self.run_id}"
        self.tags = {"smoke", self.tag}
        self.follow_sent = False
        self.link_sent = False
        self.link_confirmed = False
        self.interrupted = False

    # -- output ---------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """Belt and braces: no password or token ever reaches the output, whatever echoes it."""
        for user in (self.author, self.follower):
            for secret in (user.password, user.token):
                if secret:
                    text = text.replace(secret, REDACTED)
        return text

    def step(self, name: str, action: Callable[[], str | None]) -> bool:
        started = time.monotonic()
        try:
            detail = action()
        except StepFailed as exc:
            reason = exc.reason
        except KeyboardInterrupt:
            self.interrupted = True
            reason = "interrupted"
        except Exception as exc:  # a body of an unexpected shape must not skip the clean-up
            reason = f"unexpected {type(exc).__name__}: {exc}"
        else:
            label = f"{name}: {detail}" if detail else name
            self.echo(self.redact(f"{self.ok} {label} ({time.monotonic() - started:.2f} s)"))
            return True
        self.echo(self.redact(f"{self.ko} {name}: {reason}"))
        return False

    # -- the steps ------------------------------------------------------------------------

    def steps(self) -> list[tuple[str, Callable[[], str | None]]]:
        return [
            ("register users", self.register_users),
            ("log in", self.log_in),
            ("follow", self.follow),
            ("add link", self.add_link),
            ("list links", self.list_links),
            ("link check", self.link_check),
            ("news", self.news),
        ]

    def register_users(self) -> str:
        for user in (self.author, self.follower):
            data = self.api.json(
                "POST",
                "/v1/users",
                expect=201,
                json={"username": user.name, "email": user.email, "password": user.password},
            )
            if data.get("username") != user.name:
                raise StepFailed(
                    f"POST /v1/users answered username {data.get('username')!r}, "
                    f"expected {user.name!r}"
                )
        return f"{self.author.name}, {self.follower.name}"

    def log_in(self) -> None:
        for user in (self.author, self.follower):
            data = self.api.json(
                "POST",
                "/v1/sessions",
                expect=201,
                json={"username": user.name, "password": user.password},
            )
            token = data.get("access_token")
            if not isinstance(token, str) or not token:
                raise StepFailed("POST /v1/sessions answered 201 without an access_token")
            user.token = token

    def follow(self) -> str:
        self.follow_sent = True
        data = self.api.json(
            "POST",
            "/v1/following",
            expect=201,
            token=self.follower.token,
            json={"followed": self.author.name},
        )
        following = data.get("following")
        if not isinstance(following, list) or self.author.name not in following:
            raise StepFailed(f"POST /v1/following answered {data!r}: {self.author.name} missing")
        return f"{self.follower.name} → {self.author.name}"

    def add_link(self) -> str:
        self.link_sent = True
        data = self.api.json(
            "POST",
            "/v1/links",
            expect=201,
            token=self.author.token,
            json={
                "url": self.link_url,
                "title": f"Delinkcious smoke test {self.run_id}",
                "description": "added by `delinkcious smoke`; deleted when it ends",
                "tags": sorted(self.tags),
            },
        )
        self.link_confirmed = True
        self._check_link(data, "POST /v1/links")
        return self.link_url

    def _check_link(self, link: object, where: str) -> dict[str, Any]:
        """``link`` as a JSON object, if it has the smoke's url and tags (else StepFailed)."""
        if not isinstance(link, dict) or link.get("url") != self.link_url:
            url = link.get("url") if isinstance(link, dict) else link
            raise StepFailed(f"{where} answered url {url!r}, expected {self.link_url!r}")
        tags = link.get("tags")
        if not isinstance(tags, list) or set(tags) != self.tags:
            raise StepFailed(f"{where} answered tags {tags!r}, expected {sorted(self.tags)!r}")
        return link

    def _fetch_link(self) -> dict[str, Any]:
        where = f"GET /v1/links?tag={self.tag}"
        data = self.api.json(
            "GET", "/v1/links", expect=200, token=self.author.token, params={"tag": self.tag}
        )
        links = data.get("links")
        if not isinstance(links, list):
            raise StepFailed(f"{where} answered no links list")
        if len(links) != 1:
            urls = [link.get("url") if isinstance(link, dict) else link for link in links]
            raise StepFailed(f"{where} answered {len(links)} links {urls!r}, expected 1")
        return self._check_link(links[0], where)

    def list_links(self) -> str:
        link = self._fetch_link()
        return f"tags {', '.join(sorted(link['tags']))}, status {link.get('status')}"

    def _poll(self, probe: Callable[[], str | None]) -> str | None:
        """Call ``probe`` until it returns a value or ``--timeout`` passes; None on timeout."""
        deadline = time.monotonic() + self.timeout
        delay = FIRST_POLL_DELAY
        while True:
            found = probe()
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(delay, left))
            delay = min(delay * 2, MAX_POLL_DELAY)

    def link_check(self) -> str:
        last: list[object] = []

        def probe() -> str | None:
            status = self._fetch_link().get("status")
            last.append(status)
            return None if status == "pending" else str(status)

        status = self._poll(probe)
        if status is None:
            raise StepFailed(f"status still {last[-1]!r} after {self.timeout:g} s")
        if status not in ("valid", "invalid"):
            raise StepFailed(f"status {status!r} is none of pending, valid, invalid")
        return status

    def news(self) -> str:
        def probe() -> str | None:
            data = self.api.json(
                "GET", "/v1/news", expect=200, token=self.follower.token, params={"limit": "100"}
            )
            events = data.get("events")
            if not isinstance(events, list):
                raise StepFailed("GET /v1/news answered no events list")
            for event in events:
                if (
                    isinstance(event, dict)
                    and event.get("type") == "link.added"
                    and event.get("url") == self.link_url
                ):
                    if event.get("author") != self.author.name:
                        raise StepFailed(
                            f"link.added for {self.link_url} has author "
                            f"{event.get('author')!r}, expected {self.author.name!r}"
                        )
                    return f"{self.follower.name} sees {self.author.name}'s link.added"
            return None

        found = self._poll(probe)
        if found is None:
            raise StepFailed(
                f"no link.added for {self.link_url} in {self.follower.name}'s news "
                f"after {self.timeout:g} s"
            )
        return found

    # -- clean-up -------------------------------------------------------------------------

    def cleanup_steps(self) -> list[tuple[str, Callable[[], str | None]]]:
        """Undo what was (or may have been) created; users stay: the API cannot delete them."""
        steps: list[tuple[str, Callable[[], str | None]]] = []
        if self.link_sent and self.author.token:
            steps.append(("delete link", self.delete_link))
        if self.follow_sent and self.follower.token:
            steps.append(("unfollow", self.unfollow))
        if self.author.token or self.follower.token:
            steps.append(("log out", self.log_out))
        return steps

    def delete_link(self) -> str | None:
        try:
            self.api.call(
                "DELETE",
                "/v1/links",
                expect=204,
                token=self.author.token,
                params={"url": self.link_url},
            )
        except StepFailed:
            if self.link_confirmed:
                raise
            return "there was none"  # the add failed (or never arrived): nothing to delete
        return None

    def unfollow(self) -> None:
        self.api.call(
            "DELETE",
            "/v1/following",
            expect=204,
            token=self.follower.token,
            params={"followed": self.author.name},
        )

    def log_out(self) -> None:
        failures = []
        for user in (self.author, self.follower):
            if not user.token:
                continue
            try:
                self.api.call("DELETE", "/v1/sessions/current", expect=204, token=user.token)
            except StepFailed as exc:
                failures.append(f"{user.name}: {exc.reason}")
        if failures:
            raise StepFailed("; ".join(failures))

    def run(self) -> bool:
        """Every step until the first failure, then the clean-up, always; True if all passed."""
        passed = all(self.step(name, action) for name, action in self.steps())
        for name, action in self.cleanup_steps():
            passed = self.step(name, action) and passed
        return passed


def _base_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    value = value.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{value!r} is not an http(s) URL with a host")
    if parts.query or parts.fragment:
        raise click.BadParameter(f"{value!r} must not have a query or fragment")
    return value


def _link_url(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"{value!r} is not an http(s) URL")
    return value


def _output() -> tuple[tuple[str, str], Callable[[str], None]]:
    """✓ and ✗ on a terminal that can show them; OK and FAIL, and no crash, on one that can't."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗→…".encode(encoding)
    except (LookupError, UnicodeEncodeError):
        pass
    else:
        return ("✓", "✗"), click.echo

    def echo(line: str) -> None:
        try:
            click.echo(line.encode(encoding, "replace").decode(encoding))
        except LookupError:
            click.echo(line.encode("ascii", "replace").decode("ascii"))

    return ("OK", "FAIL"), echo


@click.command()
@click.option(
    "--url",
    required=True,
    callback=_base_url,
    help="The gateway's base URL, e.g. http://127.0.0.1:5000.",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for the link check and for the news event (each).",
)
@click.option(
    "--link-url",
    callback=_link_url,
    default=None,
    help="The link to save (default <URL>/healthz?smoke=<hex>; the checker may call it invalid).",
)
@click.option(
    "--canary",
    type=click.Choice(["always", "never"]),
    default=None,
    help="Send Delinkcious-Canary with every call: test the canary pools (or keep off them).",
)
def smoke(url: str, timeout: float, link_url: str | None, canary: str | None) -> None:
    """Smoke-test a running gateway through its public API.

    \b
    Steps: register users, log in, follow, add link, list links (by tag,
    with tags), link check (waits until the status leaves pending), news
    (the follower sees the link.added), then the clean-up: delete link,
    unfollow, log out. The clean-up runs even after a failure.
    One line per step; exit 0 if all pass, 1 on the first failure,
    2 on bad usage, 130 if interrupted.

    Each run registers two throwaway users, smoke-<hex>, with random passwords and
    example.com emails. Users cannot be deleted through the API, so they stay behind
    (with no links, follows or sessions). Tokens and passwords are never printed.
    """
    marks, echo = _output()
    started = time.monotonic()
    with httpx.Client(
        base_url=url,
        timeout=REQUEST_TIMEOUT,
        trust_env=False,
        follow_redirects=False,
        headers={"Delinkcious-Canary": canary} if canary else None,
    ) as client:
        run = Smoke(
            Api(client, url),
            base_url=url,
            link_url=link_url,
            timeout=timeout,
            echo=echo,
            marks=marks,
        )
        passed = run.run()
    elapsed = time.monotonic() - started
    if passed:
        echo(f"smoke test passed against {url} in {elapsed:.1f} s")
        return
    echo(f"smoke test FAILED against {url} in {elapsed:.1f} s")
    sys.exit(130 if run.interrupted else 1)
