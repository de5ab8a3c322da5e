"""The route table file: read at start, reloaded on change, a bad one refused in one line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from delinkcious.platform.routing.reload import RouteFile
from delinkcious.platform.routing.router import Router
from delinkcious.platform.routing.table import RouteTableError

METHODS = {"links": frozenset({"get_links", "add_link"})}
GOOD = (
    "routes:\n  links:\n    stable: [http://127.0.0.1:5001]\n    canary: [http://127.0.0.1:5010]\n"
)


def routes_file(tmp_path: Path, text: str) -> RouteFile:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return RouteFile(path, METHODS)


def weight(router: Router) -> int:
    weight: int = router.describe()["routes"]["links"]["canary_weight"]
    return weight


def test_a_changed_table_is_put_in_force(tmp_path: Path) -> None:
    routes = routes_file(tmp_path, GOOD)
    router = Router(routes.load(), {"links": "http://links"})
    assert weight(router) == 0
    routes.path.write_text(GOOD + "    canary_weight: 2500\n")
    routes.check(router)
    assert weight(router) == 2500 and routes.error is None


def test_a_bad_table_is_refused_once_and_the_old_one_stays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    routes = routes_file(tmp_path, GOOD + "    canary_weight: 1000\n")
    router = Router(routes.load(), {"links": "http://links"})
    for bad in ("routes: [oops", GOOD + "    canary_weight: 99999\n"):
        routes.path.write_text(bad)
        with caplog.at_level(logging.ERROR, logger="delinkcious.routing"):
            caplog.clear()
            routes.check(router)
            routes.check(router)  # the same content again: no second line
        assert len(caplog.records) == 1
        assert "refused, the previous one stays in force" in caplog.records[0].getMessage()
        assert weight(router) == 1000
        assert routes.error is not None
    assert "less than or equal to 10000" in (routes.error or "")
    routes.path.unlink()
    routes.check(router)
    assert weight(router) == 1000 and "cannot read" in (routes.error or "")


def test_a_table_that_is_not_yaml_is_named_at_start(tmp_path: Path) -> None:
    with pytest.raises(RouteTableError, match="not YAML at line 1"):
        routes_file(tmp_path, "routes: [oops").load()
