"""Logs of a real ``delinkcious up``: JSON lines, an access log per request, no secrets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import BIN, CHECKER_ENV, Server, new_username
from tests.support.logs import CALL_FIELDS, assert_line_fields

PASSWORD = "correct horse battery"
# What ``delinkcious up`` says to people (on stdout, or when it has stopped): not log lines.
HUMAN_LINES = (" is running at ", "Delinkcious stopped.")


def log_records(output: str) -> list[dict[str, Any]]:
    """Every line of the output but the human ones, parsed: each must be one JSON object."""
    records = []
    for line in output.splitlines():
        if not line.strip() or any(text in line for text in HUMAN_LINES):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}")
        assert isinstance(record, dict), line
        records.append(record)
    return records


def test_logs_are_json_lines_with_an_access_log_and_no_secrets(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # DEBUG: successful reads (get_links) log their call line too; at INFO only changes do.
    env = {**CHECKER_ENV, "DELINKCIOUS_LOG_FORMAT": "json", "DELINKCIOUS_LOG_LEVEL": "DEBUG"}
    server = Server(tmp_path_factory.mktemp("logging"), env=env).start()
    username = new_username()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as api:
            created = api.post(
                "/v1/users",
                json={
                    "username": username,
                    "email": f"{username}@example.com",
                    "password": PASSWORD,
                },
            )
            assert created.status_code == 201, created.text
            session = api.post("/v1/sessions", json={"username": username, "password": PASSWORD})
            assert session.status_code == 201, session.text
            token = session.json()["access_token"]
            auth = {"Access-Token": token}
            added = api.post(
                "/v1/links", json={"url": "http://127.0.0.1:9/logged", "title": "t"}, headers=auth
            )
            assert added.status_code == 201, added.text
            listed = api.get("/v1/links", params={"tag": "none", "limit": 5}, headers=auth)
            assert listed.status_code == 200, listed.text
            bearer = api.get("/v1/following", headers={"Authorization": f"Bearer {token}"})
            assert bearer.status_code == 200, bearer.text
            refused = api.get("/v1/links", headers={"Access-Token": "not-a-live-token"})
            assert refused.status_code == 401
        # Not HTTP at all: uvicorn's own warning must be a JSON line too.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"NOT HTTP\r\n\r\n")
            raw.recv(1024)
    finally:
        code, output = server.stop()
    assert code == 0, output

    records = log_records(output)
    assert records, output
    for record in records:
        assert_line_fields(record)

    assert any(record.get("logger") == "uvicorn.error" for record in records), output

    requests = [record for record in records if record["event"] == "request"]
    seen = Counter((r["http_method"], r["route"], r["status"], r["user"]) for r in requests)
    # Counted, not ordered: a line is written once its response has gone out.
    assert seen == Counter(
        [
            ("POST", "/v1/users", 201, None),
            ("POST", "/v1/sessions", 201, None),
            ("POST", "/v1/links", 201, username),
            ("GET", "/v1/links", 200, username),
            ("GET", "/v1/following", 200, username),
            ("GET", "/v1/links", 401, None),
        ]
    ), seen
    for record in requests:
        assert isinstance(record["duration_ms"], float)
        assert isinstance(record["client"], str)

    calls = [record for record in records if record["event"] == "call"]
    methods = {(record["service"], record["method"]) for record in calls}
    assert {("users", "register"), ("users", "login"), ("links", "add_link")} <= methods, methods
    assert ("links", "get_links") in methods, methods
    for record in calls:
        missing = [name for name in CALL_FIELDS if name not in record]
        assert not missing, f"missing {missing} in {record}"
        assert ("result" in record) != ("error" in record), record
    login = next(record for record in calls if record["method"] == "login")
    assert login["request"]["password"] == "[redacted]"
    assert login["result"] == "[redacted]"

    # The secrets of the session: nowhere, in any line.
    assert token not in output
    assert PASSWORD not in output
    assert "not-a-live-token" not in output


def test_a_bad_log_level_is_a_one_line_configuration_error(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(BIN), "up", "--port", "0", "--data-dir", str(tmp_path)],
        env={**os.environ, "DELINKCIOUS_LOG_LEVEL": "chatty"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "LOG_LEVEL" in lines[0] and "chatty" in lines[0], lines[0]
