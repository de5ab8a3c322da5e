"""``delinkcious smoke`` as a program: against the real system, a dead port and a broken fake."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.conftest import BIN, Server, free_port

# The real command, as a person runs it.
COMMAND = [str(BIN), "smoke"]
STEPS = ["register users", "log in", "follow", "add link", "list links", "link check", "news"]
CLEANUP = ["delete link", "unfollow", "log out"]
# A session token is 43 url-safe characters; nothing that long belongs in the output.
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_-]{32,}")


def run_smoke(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def test_passes_against_the_real_system(server: Server) -> None:
    code, output = run_smoke("--url", server.url, "--timeout", "15")
    assert code == 0, output
    lines = output.splitlines()
    for step in STEPS + CLEANUP:
        assert any(line.startswith(f"✓ {step}") and line.endswith(" s)") for line in lines), (
            step,
            output,
        )
    assert re.search(r"^✓ link check: (valid|invalid) \(\d+\.\d\d s\)$", output, re.M), output
    assert re.search(r"^✓ register users: smoke-[0-9a-f]+, smoke-[0-9a-f]+ ", output, re.M)
    assert re.search(
        rf"^smoke test passed against {re.escape(server.url)} in \d+\.\d s$", output, re.M
    ), output
    assert "✗" not in output and "Traceback" not in output
    assert "access_token" not in output and not TOKEN_LIKE.search(output), output


def test_a_dead_port_fails_at_the_first_step_with_a_connection_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, output = run_smoke("--url", url)
    assert code == 1, output
    assert output.splitlines()[0].startswith("✗ register users: "), output
    assert "connection error" in output and url in output
    assert "✓" not in output and "Traceback" not in output
    assert f"smoke test FAILED against {url}" in output


@pytest.mark.parametrize("url", ["ftp://127.0.0.1", "127.0.0.1:5000", "http://", "http://h:x"])
def test_a_bad_url_is_a_usage_error(url: str) -> None:
    code, output = run_smoke("--url", url)
    assert code == 2, output
    assert "--url" in output and "Traceback" not in output


class FakeGateway:
    """A tiny stand-in for the gateway on loopback, right until the failures it is told to make.

    ``fail`` holds any of: list-500, list-no-tags, list-not-json, pending, news-author,
    delete-500 (whose error message echoes the caller's token).
    """

    def __init__(self, *fail: str) -> None:
        self.fail = set(fail)
        self.calls: list[tuple[str, str]] = []
        self.passwords: list[str] = []
        self.tokens: dict[str, str] = {}
        self.link: dict[str, Any] | None = None
        self.author: str | None = None
        self.lock = threading.Lock()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def __enter__(self) -> FakeGateway:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.http.shutdown()
        self.http.server_close()

    def called(self, method: str, path: str) -> list[dict[str, list[str]]]:
        """The query strings of the calls to ``method path``, in order."""
        with self.lock:
            return [
                parse_qs(urlsplit(target).query)
                for verb, target in self.calls
                if verb == method and urlsplit(target).path == path
            ]

    def answer(
        self, method: str, path: str, token: str | None, body: Any
    ) -> tuple[int, object | None]:
        if (method, path) == ("POST", "/v1/users"):
            self.passwords.append(body["password"])
            return 201, {"username": body["username"], "email": body["email"]}
        if (method, path) == ("POST", "/v1/sessions"):
            token = f"faketoken{secrets.token_hex(20)}"
            self.tokens[token] = body["username"]
            return 201, {"access_token": token}
        user = self.tokens.get(token or "")
        if user is None:
            return 401, {"error": {"code": "unauthenticated", "message": "no valid token"}}
        if (method, path) == ("POST", "/v1/following"):
            return 201, {"following": [body["followed"]]}
        if (method, path) == ("POST", "/v1/links"):
            self.author = user
            self.link = {
                "url": body["url"],
                "title": body["title"],
                "description": body.get("description", ""),
                "tags": sorted(body.get("tags", [])),
                "status": "pending",
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
            }
            return 201, self.link
        if (method, path) == ("GET", "/v1/links"):
            assert self.link is not None
            if "list-500" in self.fail:
                return 500, {"error": {"code": "internal", "message": "internal error"}}
            if "list-not-json" in self.fail:
                return 200, b"<html>it works</html>"
            link = dict(self.link)
            if "list-no-tags" in self.fail:
                link["tags"] = []
            if "pending" not in self.fail:
                self.link["status"] = "invalid"  # checked: the next list shows it
            return 200, {"links": [link], "next_page_token": None}
        if (method, path) == ("GET", "/v1/news"):
            assert self.link is not None
            author = "someone-else" if "news-author" in self.fail else self.author
            event = {
                "id": "e1",
                "type": "link.added",
                "author": author,
                "url": self.link["url"],
                "title": self.link["title"],
                "timestamp": "2024-01-01T00:00:00Z",
            }
            return 200, {"events": [event], "next_page_token": None}
        if (method, path) == ("DELETE", "/v1/links"):
            if "delete-500" in self.fail:
                message = f"could not delete for session {token}"
                return 500, {"error": {"code": "internal", "message": message}}
            return 204, None
        if (method, path) in (("DELETE", "/v1/following"), ("DELETE", "/v1/sessions/current")):
            return 204, None
        return 404, {"error": {"code": "not_found", "message": f"{method} {path}"}}

    def _handler(fake) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def log_message(self, *_: object) -> None:
                pass

            def serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with fake.lock:
                    fake.calls.append((self.command, self.path))
                    status, payload = fake.answer(
                        self.command,
                        urlsplit(self.path).path,
                        self.headers.get("Access-Token"),
                        body,
                    )
                if payload is None:
                    data = b""
                elif isinstance(payload, bytes):
                    data = payload
                else:
                    data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = serve

        return Handler


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeGateway]:
    with FakeGateway(*request.param) as gateway:
        yield gateway


def assert_secrets_hidden(fake: FakeGateway, output: str) -> None:
    assert fake.tokens and len(fake.passwords) == 2
    for secret in [*fake.tokens, *fake.passwords]:
        assert secret not in output, output
    assert "Traceback" not in output


def assert_cleaned_up(fake: FakeGateway) -> None:
    assert fake.link is not None
    assert fake.called("DELETE", "/v1/links") == [{"url": [fake.link["url"]]}]
    assert fake.called("DELETE", "/v1/following") == [{"followed": [fake.author]}]
    assert len(fake.called("DELETE", "/v1/sessions/current")) == 2


@pytest.mark.parametrize(
    ("fake", "reason"),
    [
        (["list-500"], "answered 500 (expected 200): internal, internal error"),
        (["list-no-tags"], "answered tags []"),
        (["list-not-json"], "not a JSON object"),
    ],
    indirect=["fake"],
)
def test_a_broken_list_fails_at_that_step_and_still_cleans_up(
    fake: FakeGateway, reason: str
) -> None:
    code, output = run_smoke("--url", fake.url)
    assert code == 1, output
    lines = output.splitlines()
    assert [line.split(":")[0].split(" (")[0] for line in lines[:5]] == [
        f"✓ {step}" for step in STEPS[:4]
    ] + ["✗ list links"], output
    failed = lines[4]
    assert "GET /v1/links?tag=smoke-" in failed and reason in failed, output
    assert "link check" not in output and "news" not in output
    for step in CLEANUP:
        assert f"✓ {step} (" in output, output
    assert lines[-1].startswith(f"smoke test FAILED against {fake.url} in ")
    assert_cleaned_up(fake)
    assert_secrets_hidden(fake, output)


@pytest.mark.parametrize("fake", [["list-500", "delete-500"]], indirect=True)
def test_a_failing_cleanup_is_reported_without_masking_the_first_failure(
    fake: FakeGateway,
) -> None:
    code, output = run_smoke("--url", fake.url)
    assert code == 1, output
    failures = [line for line in output.splitlines() if line.startswith("✗")]
    assert [line.split(":")[0] for line in failures] == ["✗ list links", "✗ delete link"]
    assert "answered 500" in failures[1] and "[redacted]" in failures[1], output
    assert "✓ unfollow (" in output and "✓ log out (" in output
    assert_cleaned_up(fake)
    assert_secrets_hidden(fake, output)


@pytest.mark.parametrize("fake", [["pending"]], indirect=True)
def test_a_link_that_stays_pending_fails_after_the_timeout(fake: FakeGateway) -> None:
    code, output = run_smoke("--url", fake.url, "--timeout", "0.3")
    assert code == 1, output
    assert "✗ link check: status still 'pending' after 0.3 s" in output, output
    assert len(fake.called("GET", "/v1/links")) >= 3  # listed once, then polled
    assert_cleaned_up(fake)
    assert_secrets_hidden(fake, output)


@pytest.mark.parametrize("fake", [["news-author"]], indirect=True)
def test_news_with_the_wrong_author_fails(fake: FakeGateway) -> None:
    code, output = run_smoke("--url", fake.url, "--link-url", "https://example.com/smoke")
    assert code == 1, output
    assert "✓ link check: invalid" in output
    assert "✗ news: link.added for https://example.com/smoke has author 'someone-else'" in output
    assert fake.link is not None and fake.link["url"] == "https://example.com/smoke"
    assert_cleaned_up(fake)
    assert_secrets_hidden(fake, output)
