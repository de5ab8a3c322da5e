"""The internal API on the wire, as JSON Schema, and its snapshot at the last release.

For each service of the registry that serves a Protocol, each method records three things:
the JSON Schema of its request body (the pydantic model the server validates), the JSON
Schema of its ``result`` (the pydantic model the client parses), and whether clients may
retry it (``@idempotent``). Both schemas come from
``delinkcious.platform.transport.introspection.describe``, the description server and
client run on. Titles and descriptions (docstrings) are left out: they do not travel.

``tests/compat/internal_api.json`` is this description *as released*. The next release is
checked against it (``tests/unit/test_internal_api_compatibility.py``). Refresh it
deliberately, once per release, after tagging it::

    .venv/bin/python -m tests.compat.snapshot

Between releases it must not follow the code: it is the API the running release still
speaks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

from delinkcious import registry
from delinkcious.platform.transport.introspection import describe

SNAPSHOT = Path(__file__).with_name("internal_api.json")
REFRESH = ".venv/bin/python -m tests.compat.snapshot"

Api = dict[str, Any]
"""``{"services": {service: {"protocol": name, "methods": {method: {...}}}}}``."""

# Keywords that document a schema without constraining what it accepts.
_PROSE = frozenset({"title", "description", "examples"})


def _without_prose(schema: Any) -> Any:
    """``schema`` without titles and descriptions. Property names stay, even "title"."""
    if isinstance(schema, list):
        return [_without_prose(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kept: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _PROSE:
            continue
        if key in ("properties", "$defs"):  # maps of names to schemas
            kept[key] = {name: _without_prose(item) for name, item in value.items()}
        else:
            kept[key] = _without_prose(value)
    return kept


def describe_api(protocols: Mapping[str, type]) -> Api:
    """The wire description of ``protocols`` (service name -> Protocol)."""
    services: dict[str, Any] = {}
    for service, protocol in protocols.items():
        methods = {
            name: {
                "idempotent": method.idempotent,
                "request": _without_prose(method.arguments.model_json_schema()),
                "result": _without_prose(method.result.json_schema()),
            }
            for name, method in sorted(describe(protocol).items())
        }
        services[service] = {"protocol": protocol.__name__, "methods": methods}
    return {"services": services}


def current_api() -> Api:
    """This checkout's internal API: every service of the registry that has a Protocol."""
    return describe_api(registry.protocols())


def load_snapshot(path: Path = SNAPSHOT) -> Api:
    snapshot: Api = json.loads(path.read_text())
    return snapshot


def write_snapshot(path: Path = SNAPSHOT) -> Api:
    api = {
        "about": (
            "The internal API of the last release, which the next one must stay compatible "
            f"with (tests/unit/test_internal_api_compatibility.py). Refresh at a release: {REFRESH}"
        ),
        "version": version("delinkcious"),
        **current_api(),
    }
    path.write_text(json.dumps(api, indent=2, sort_keys=True) + "\n")
    return api


def main() -> None:
    api = write_snapshot()
    methods = sum(len(s["methods"]) for s in api["services"].values())
    print(
        f"wrote {SNAPSHOT}: {len(api['services'])} services, {methods} methods, "
        f"version {api['version']}"
    )


if __name__ == "__main__":
    main()
