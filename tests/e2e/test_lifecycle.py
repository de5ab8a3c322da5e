"""`delinkcious up` as a program: it starts, says where, keeps data, stops on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import BIN, Server, register_and_login
from tests.e2e.test_links import add, all_pages


def test_prints_url_stops_cleanly_and_restart_keeps_data_and_sessions(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = Server(tmp_path_factory.mktemp("lifecycle")).start()
    with httpx.Client(base_url=server.url, timeout=10) as api:
        auth = register_and_login(api)
        add(api, auth, "http://127.0.0.1:9/kept", tags=["t"])
    code, output = server.stop(signal.SIGINT)
    assert code == 0, output
    assert f"running at {server.url}" in output
    assert "Traceback" not in output
    assert (server.data_dir / "links.db").exists() and (server.data_dir / "users.db").exists()

    server.start()
    with httpx.Client(base_url=server.url, timeout=10) as api:
        assert all_pages(api, auth) == ["http://127.0.0.1:9/kept"]
    code, output = server.stop(signal.SIGTERM)
    assert code == 0, output
    assert "Traceback" not in output


def test_link_cap_is_configurable(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = Server(tmp_path_factory.mktemp("cap"), env={"DELINKCIOUS_MAX_LINKS_PER_USER": "2"})
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as api:
            auth = register_and_login(api)
            assert add(api, auth, "http://127.0.0.1:9/1").status_code == 201
            assert add(api, auth, "http://127.0.0.1:9/2").status_code == 201
            third = add(api, auth, "http://127.0.0.1:9/3")
            assert third.status_code == 403
            assert third.json()["error"]["code"] == "link_limit_reached"
            api.delete("/v1/links", params={"url": "http://127.0.0.1:9/1"}, headers=auth)
            assert add(api, auth, "http://127.0.0.1:9/3").status_code == 201
    finally:
        server.stop()


def test_refuses_a_port_in_use_with_a_one_line_reason(server: Server, tmp_path: Path) -> None:
    clash = subprocess.run(
        [str(BIN), "up", "--port", str(server.port), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert clash.returncode != 0
    assert f"cannot listen on 127.0.0.1:{server.port}" in clash.stderr
    assert "Traceback" not in clash.stderr
