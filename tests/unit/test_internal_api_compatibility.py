"""Internal API compatibility: release X and X+1 can call each other during a rollout.

``tests/compat/internal_api.json`` is the internal API as last released (refresh it at a
release: ``.venv/bin/python -m tests.compat.snapshot``). This checkout's API, read from
the registry's Protocols through ``describe``, must not break a mixed pair with it in
either direction. The rules are in ``tests/compat/compatibility.py``. The tests below
show four things:

- the current API against the snapshot: the gate itself;
- each incompatible change, made on a copy of the real API, is caught, and the
  compatible ones are not;
- the transport facts the rules stand on (extra result fields ignored, unknown request
  fields refused, dataclass arguments sent whole) hold, through the transport's own
  codecs;
- on small two-version APIs, the rules' verdict equals what actually happens when each
  version's client talks to the other version's server.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from delinkcious import registry
from delinkcious.model.checker import CheckResult
from delinkcious.model.events import Event, EventType
from delinkcious.model.links import (
    GetLinksRequest,
    GetLinksResult,
    Link,
    LinkManager,
    LinkStatus,
)
from delinkcious.model.news import GetNewsResult
from delinkcious.model.users import User
from delinkcious.platform.transport.introspection import describe
from tests.compat.compatibility import Break, breaking_changes
from tests.compat.snapshot import (
    REFRESH,
    Api,
    current_api,
    describe_api,
    load_snapshot,
    write_snapshot,
)

# Incompatible changes made on purpose, by ``Break.key``, each with why it is safe. The
# usual reason is the API's own contract step: the release before stopped calling what
# this one removes. An entry that no longer matches a break fails the test: remove it
# once the snapshot is refreshed.
ACKNOWLEDGED: dict[str, str] = {}


# -- the gate ----------------------------------------------------------------------------------


def test_this_release_can_run_beside_the_last_one() -> None:
    breaks = breaking_changes(load_snapshot(), current_api())
    unexpected = [str(b) for b in breaks if b.key not in ACKNOWLEDGED]
    assert unexpected == [], (
        "the internal API changed incompatibly with the last release (a mixed-version pair "
        "would fail); make the change compatible, or acknowledge it in ACKNOWLEDGED with why "
        "it is safe"
    )
    stale = set(ACKNOWLEDGED) - {b.key for b in breaks}
    assert not stale, f"acknowledged breaks that no longer happen: {sorted(stale)}"


def test_the_api_covers_every_internal_service_of_the_registry() -> None:
    assert set(current_api()["services"]) == set(registry.protocols())
    for service in load_snapshot()["services"].values():
        for method in service["methods"].values():
            assert set(method) == {"idempotent", "request", "result"}


def test_the_refresh_command_writes_what_the_gate_reads(tmp_path: Path) -> None:
    written = write_snapshot(tmp_path / "internal_api.json")
    assert REFRESH in written["about"]
    read = load_snapshot(tmp_path / "internal_api.json")
    assert read["services"] == current_api()["services"]
    assert breaking_changes(read, current_api()) == []


# -- each incompatibility is caught: mutations of a copy of the real API ----------------------


def _method(api: Api, service: str, method: str) -> dict[str, Any]:
    found: dict[str, Any] = api["services"][service]["methods"][method]
    return found


def _schema(api: Api, service: str, method: str, part: str, shape: str | None = None) -> Any:
    """A method's request or result schema, or the ``$defs`` entry ``shape`` in it."""
    schema = _method(api, service, method)[part]
    return schema["$defs"][shape] if shape is not None else schema


Mutation = Callable[[Api, Api], None]  # (old, new): changes the new API (rarely the old too)


def _add_parameter(api: Api, service: str, method: str, name: str, schema: Any) -> None:
    _schema(api, service, method, "request")["properties"][name] = schema


def _set_default(value: str) -> Mutation:
    """Both versions have an optional parameter ``hint``; ``new`` changes its default."""

    def mutate(old: Api, new: Api) -> None:
        _add_parameter(old, "links", "delete_link", "hint", {"type": "string", "default": "a"})
        _add_parameter(new, "links", "delete_link", "hint", {"type": "string", "default": value})

    return mutate


def _remove_method(old: Api, new: Api) -> None:
    del new["services"]["links"]["methods"]["delete_link"]


def _remove_service(old: Api, new: Api) -> None:
    del new["services"]["link_checker"]


def _not_idempotent(old: Api, new: Api) -> None:
    _method(new, "links", "get_links")["idempotent"] = False


def _remove_request_field(old: Api, new: Api) -> None:
    del _schema(new, "links", "add_link", "request", "AddLinkRequest")["properties"]["description"]


def _retype_parameter(old: Api, new: Api) -> None:
    _schema(new, "users", "register", "request")["properties"]["email"] = {"type": "integer"}


def _add_required_parameter(old: Api, new: Api) -> None:
    _add_parameter(new, "users", "login", "otp", {"type": "string"})
    _schema(new, "users", "login", "request")["required"].append("otp")


def _add_required_argument_field(old: Api, new: Api) -> None:
    shape = _schema(new, "links", "add_link", "request", "AddLinkRequest")
    shape["properties"]["folder"] = {"type": "string"}
    shape["required"].append("folder")


def _add_optional_argument_field(old: Api, new: Api) -> None:
    shape = _schema(new, "links", "get_links", "request", "GetLinksRequest")
    shape["properties"]["sort"] = {"type": "string", "default": "newest"}


def _require_argument_field(old: Api, new: Api) -> None:
    _schema(new, "links", "get_links", "request", "GetLinksRequest")["required"].append("limit")


def _request_field_not_nullable(old: Api, new: Api) -> None:
    shape = _schema(new, "links", "get_links", "request", "GetLinksRequest")
    shape["properties"]["start_token"] = {"type": "string"}


def _parameter_optional(old: Api, new: Api) -> None:
    request = _schema(new, "social_graph", "follow", "request")
    request["required"].remove("follower")
    request["properties"]["follower"]["default"] = ""


def _remove_result_enum_value(old: Api, new: Api) -> None:
    _schema(new, "links", "add_link", "result", "LinkStatus")["enum"].remove("invalid")


def _add_result_enum_value(old: Api, new: Api) -> None:
    _schema(new, "links", "add_link", "result", "LinkStatus")["enum"].append("archived")


def _remove_result_field(old: Api, new: Api) -> None:
    del _schema(new, "links", "add_link", "result")["properties"]["created_at"]


def _retype_result_field(old: Api, new: Api) -> None:
    _schema(new, "users", "register", "result")["properties"]["created_at"]["format"] = "date"


def _nullable_result_field(old: Api, new: Api) -> None:
    properties = _schema(new, "users", "get_user", "result")["properties"]
    properties["email"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}


def _add_required_result_field(old: Api, new: Api) -> None:
    result = _schema(new, "link_checker", "check_link", "result")
    result["properties"]["checked_at"] = {"type": "string", "format": "date-time"}
    result["required"].append("checked_at")


def _retype_result_items(old: Api, new: Api) -> None:
    _schema(new, "social_graph", "get_followers", "result")["items"] = {"type": "integer"}


def _retype_mapping_values(old: Api, new: Api) -> None:
    trace = _schema(new, "news", "get_news", "result", "Event")["properties"]["trace"]
    trace["additionalProperties"] = {"type": "integer"}


INCOMPATIBLE: dict[str, tuple[Mutation, str]] = {
    "a method removed": (_remove_method, "links.delete_link: method removed"),
    "a service removed": (_remove_service, "link_checker: service removed"),
    "a method no longer idempotent": (_not_idempotent, "links.get_links: no longer idempotent"),
    "a request field removed": (
        _remove_request_field,
        "links.add_link request request.description: field removed",
    ),
    "a parameter retyped": (
        _retype_parameter,
        "users.register request email: type changed from string to integer",
    ),
    "a required parameter added": (
        _add_required_parameter,
        "users.login request otp: required field added",
    ),
    "a required field added to an argument": (
        _add_required_argument_field,
        "links.add_link request request.folder: required field added",
    ),
    "an optional field added to an argument": (
        _add_optional_argument_field,
        "links.get_links request request.sort: field added to an argument",
    ),
    "an argument field became required": (
        _require_argument_field,
        "links.get_links request request.limit: field became required",
    ),
    "a request field no longer nullable": (
        _request_field_not_nullable,
        "links.get_links request request.start_token: null no longer accepted",
    ),
    "a parameter became optional": (
        _parameter_optional,
        "social_graph.follow request follower: parameter became optional",
    ),
    "a parameter's default changed": (
        _set_default("b"),
        "links.delete_link request hint: default changed from 'a' to 'b'",
    ),
    "an enum value removed from a result": (
        _remove_result_enum_value,
        "links.add_link result status: enum value 'invalid' removed",
    ),
    "an enum value added to a result": (
        _add_result_enum_value,
        "links.add_link result status: enum value 'archived' added",
    ),
    "a result field removed": (
        _remove_result_field,
        "links.add_link result created_at: field removed",
    ),
    "a result field retyped": (
        _retype_result_field,
        "users.register result created_at: format changed from 'date-time' to 'date'",
    ),
    "a result field may now be null": (
        _nullable_result_field,
        "users.get_user result email: may now be null",
    ),
    "a required result field added": (
        _add_required_result_field,
        "link_checker.check_link result checked_at: required field added",
    ),
    "a result's list items retyped": (
        _retype_result_items,
        "social_graph.get_followers result []: type changed from string to integer",
    ),
    "a result mapping's values retyped": (
        _retype_mapping_values,
        "news.get_news result events[].trace{}: type changed from string to integer",
    ),
}


def _mutated(mutation: Mutation) -> tuple[Api, Api]:
    old, new = copy.deepcopy(current_api()), copy.deepcopy(current_api())
    mutation(old, new)
    return old, new


@pytest.mark.parametrize(("mutation", "expected"), INCOMPATIBLE.values(), ids=list(INCOMPATIBLE))
def test_each_incompatible_change_is_caught(mutation: Mutation, expected: str) -> None:
    assert [b.key for b in breaking_changes(*_mutated(mutation))] == [expected]


def _add_optional_parameter(old: Api, new: Api) -> None:
    schema = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    _add_parameter(new, "links", "delete_link", "reason", schema)


def _add_result_field_with_default(old: Api, new: Api) -> None:
    properties = _schema(new, "links", "add_link", "result")["properties"]
    properties["favicon"] = {"type": "string", "default": ""}


def _add_method(old: Api, new: Api) -> None:
    methods = new["services"]["links"]["methods"]
    methods["archive_link"] = copy.deepcopy(methods["delete_link"])


def _add_service(old: Api, new: Api) -> None:
    new["services"]["search"] = copy.deepcopy(new["services"]["link_checker"])


def _become_idempotent(old: Api, new: Api) -> None:
    _method(new, "links", "add_link")["idempotent"] = True


def _reword(old: Api, new: Api) -> None:
    result = _schema(new, "links", "get_links", "result")
    result["title"] = "GetLinksResult"
    result["description"] = "Reworded docstring."
    result["$defs"]["Link"]["properties"]["url"]["title"] = "Url"


def _rename_a_shape(old: Api, new: Api) -> None:
    result = _schema(new, "links", "get_links", "result")
    result["$defs"]["LinkV2"] = result["$defs"].pop("Link")
    result["properties"]["links"]["items"] = {"$ref": "#/$defs/LinkV2"}


COMPATIBLE: dict[str, Mutation] = {
    "an optional parameter added": _add_optional_parameter,
    "a result field with a default added": _add_result_field_with_default,
    "a method added": _add_method,
    "a service added": _add_service,
    "a method became idempotent": _become_idempotent,
    "titles and descriptions changed": _reword,
    "a shape renamed": _rename_a_shape,
    "a parameter's default unchanged": _set_default("a"),
}


@pytest.mark.parametrize("mutation", COMPATIBLE.values(), ids=list(COMPATIBLE))
def test_compatible_changes_pass(mutation: Mutation) -> None:
    assert breaking_changes(*_mutated(mutation)) == []


def test_a_break_says_who_fails() -> None:
    (found,) = breaking_changes(*_mutated(_add_result_enum_value))
    assert found == Break(
        "links.add_link result status",
        "enum value 'archived' added",
        "new servers may send it; old clients refuse it",
    )


# -- the transport facts the rules stand on ----------------------------------------------------

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
LINK = Link(
    "https://example.com/", "Example", "about", frozenset({"a", "b"}), LinkStatus.VALID, T0, T0
)
EVENT = Event(
    EventType.LINK_ADDED,
    "alice",
    LINK.url,
    LINK.title,
    ("a",),
    id="e1",
    time=T0,
    trace={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    data={"status": "valid"},
)
# One value of every result type of the internal API.
SAMPLE_RESULTS: dict[object, object] = {
    GetLinksResult: GetLinksResult([LINK], "next"),
    Link: LINK,
    type(None): None,
    User: User("alice", "alice@example.com", T0),
    str: "a-session-token",
    list[str]: ["bob", "carol"],
    GetNewsResult: GetNewsResult([EVENT], None),
    CheckResult: CheckResult(LinkStatus.INVALID, "HTTP 404"),
}
METHODS = [
    (service, name, method)
    for service, protocol in registry.protocols().items()
    for name, method in describe(protocol).items()
]


def _with_unknown_fields(value: Any, encoded: Any) -> Any:
    """``encoded`` (the JSON of ``value``) with a field added to every object that stands
    for a dataclass, as a newer server would send it."""
    if dataclasses.is_dataclass(value) and isinstance(encoded, dict):
        grown = {
            key: _with_unknown_fields(getattr(value, key), item) for key, item in encoded.items()
        }
        return {**grown, "added_in_the_next_release": {"any": ["shape", 1]}}
    if isinstance(value, list | tuple) and isinstance(encoded, list):
        return [_with_unknown_fields(v, e) for v, e in zip(value, encoded, strict=True)]
    return encoded


@pytest.mark.parametrize(
    ("service", "name", "method"), METHODS, ids=[f"{s}.{n}" for s, n, _ in METHODS]
)
def test_clients_ignore_result_fields_they_do_not_know(
    service: str, name: str, method: Any
) -> None:
    """So a result field added with a default is compatible: old clients skip it."""
    assert method.returns in SAMPLE_RESULTS, f"add a sample {method.returns} to SAMPLE_RESULTS"
    value = SAMPLE_RESULTS[method.returns]
    encoded = json.loads(method.encode_result(value))["result"]
    body = {"result": _with_unknown_fields(value, encoded), "served_at": "elsewhere"}
    if dataclasses.is_dataclass(value):
        assert "added_in_the_next_release" in json.dumps(body["result"])
    assert method.response.model_validate_json(json.dumps(body)).result == value


@pytest.mark.parametrize(
    "change",
    [
        {"status": "archived"},  # an enum value it does not know
        {"created_at": "yesterday"},  # a value of another type
        {"status": None},  # null where none was expected
    ],
)
def test_clients_refuse_a_result_they_cannot_read(change: dict[str, Any]) -> None:
    add_link = describe(LinkManager)["add_link"]
    good = json.loads(add_link.encode_result(LINK))
    add_link.response.model_validate_json(json.dumps(good))
    with pytest.raises(ValidationError):
        add_link.response.model_validate_json(json.dumps({"result": good["result"] | change}))
    missing = {k: v for k, v in good["result"].items() if k not in change}  # a required field
    with pytest.raises(ValidationError):
        add_link.response.model_validate_json(json.dumps({"result": missing}))


@pytest.mark.parametrize(
    "body",
    [
        {"request": {"username": "alice"}, "sort": "oldest"},  # a parameter
        {"request": {"username": "alice", "sort": "oldest"}},  # a field of an argument
        {"request": {"username": "alice", "filter": {"tag": "a", "sort": "oldest"}}},  # deeper
    ],
    ids=["parameter", "argument field", "nested argument field"],
)
def test_servers_refuse_request_fields_they_do_not_know(body: dict[str, Any]) -> None:
    """So removing a request field breaks old clients that send it, and a new client's
    extra field breaks old servers."""
    get_links = describe(LinkManager)["get_links"]
    get_links.arguments.model_validate_json(json.dumps({"request": {"username": "alice"}}))
    with pytest.raises(ValidationError):
        get_links.arguments.model_validate_json(json.dumps(body))


def test_clients_send_every_field_of_an_argument_but_only_the_parameters_given() -> None:
    """Why an optional field added to an argument breaks old servers while an optional
    parameter does not (until a caller passes it)."""
    body = json.loads(
        describe(LinkManager)["get_links"].encode_arguments({"request": GetLinksRequest("alice")})
    )
    assert body["request"]["limit"] == 10  # a default, sent all the same
    assert set(body["request"]["filter"]) == {
        "url_regex",
        "title_regex",
        "description_regex",
        "tag",
    }

    old = describe(_api(type(None), username=str))["call"]
    new = describe(_api(type(None), username=str, hint=(str | None, None)))["call"]
    not_passed = new.encode_arguments({"username": "alice"})
    assert json.loads(not_passed) == {"username": "alice"}
    old.arguments.model_validate_json(not_passed)
    with pytest.raises(ValidationError):  # once a caller passes it, old servers refuse it
        old.arguments.model_validate_json(new.encode_arguments({"username": "a", "hint": "x"}))


# -- the rules agree with real calls between two versions --------------------------------------


def _api(returns: Any, **parameters: Any) -> type:
    """A one-method API ``call(**parameters) -> returns``, as ``describe`` reads a Protocol.
    Each parameter is a type, or ``(type, default)``."""

    async def call(self: object, **arguments: Any) -> Any:
        raise NotImplementedError

    signature = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {"return": returns}
    for name, spec in parameters.items():
        annotation, default = spec if isinstance(spec, tuple) else (spec, inspect.Parameter.empty)
        signature.append(
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=default,
                annotation=annotation,
            )
        )
        annotations[name] = annotation
    setattr(call, "__signature__", inspect.Signature(signature))  # noqa: B010
    setattr(call, "__annotations__", annotations)  # noqa: B010
    return type("Api", (), {"call": call})


class Status(StrEnum):
    OK = "ok"
    GONE = "gone"


class StatusPlus(StrEnum):
    OK = "ok"
    GONE = "gone"
    ARCHIVED = "archived"


class StatusMinus(StrEnum):
    OK = "ok"


def _shape(*fields: Any) -> Any:
    return make_dataclass("Shape", list(fields), frozen=True)


USERNAME = ("username", str)
LIMIT = ("limit", int, field(default=10))
NAME = ("name", str)
STATUS = ("status", Status)
Req = _shape(USERNAME, LIMIT)
Res = _shape(NAME, STATUS)


@dataclass(frozen=True)
class Release:
    """One version of a one-method API: the call its clients make, the answer its servers give."""

    api: type
    call: dict[str, Any]
    answer: Any


def _release(
    request_type: Any, result_type: Any, request: Any, answer: Any, **more: Any
) -> Release:
    return Release(_api(result_type, request=request_type, **more), {"request": request}, answer)


OLD = _release(Req, Res, Req("alice"), Res("x", Status.OK))


@dataclass(frozen=True)
class Evolution:
    """A change from ``old`` to ``new``, and the break the rules must report (None: none)."""

    new: Release
    expected: str | None
    old: Release = OLD


ReqSort = _shape(USERNAME, LIMIT, ("sort", str, field(default="newest")))
ReqFolder = _shape(USERNAME, ("folder", str), LIMIT)
ReqBare = _shape(USERNAME)
ReqTextLimit = _shape(USERNAME, ("limit", str, field(default="10")))
ResNote = _shape(NAME, STATUS, ("note", str, field(default="")))
ResNoteRequired = _shape(NAME, STATUS, ("note", str))
ResBare = _shape(NAME)
ResPlus = _shape(NAME, ("status", StatusPlus))
ResMinus = _shape(NAME, ("status", StatusMinus))
ResMaybe = _shape(("name", str | None), STATUS)

EVOLUTIONS = {
    "unchanged": Evolution(OLD, None),
    "optional parameter added (not passed yet)": Evolution(
        _release(Req, Res, Req("alice"), Res("x", Status.OK), hint=(str | None, None)), None
    ),
    "optional field added to an argument": Evolution(
        _release(ReqSort, Res, ReqSort("alice"), Res("x", Status.OK)),
        "svc.call request request.sort: field added to an argument",
    ),
    "required field added to an argument": Evolution(
        _release(ReqFolder, Res, ReqFolder("alice", "inbox"), Res("x", Status.OK)),
        "svc.call request request.folder: required field added",
    ),
    "argument field removed": Evolution(
        _release(ReqBare, Res, ReqBare("alice"), Res("x", Status.OK)),
        "svc.call request request.limit: field removed",
    ),
    "argument field retyped": Evolution(
        _release(ReqTextLimit, Res, ReqTextLimit("alice"), Res("x", Status.OK)),
        "svc.call request request.limit: type changed from integer to string",
    ),
    "result field added with a default": Evolution(
        _release(Req, ResNote, Req("alice"), ResNote("x", Status.OK, "hi")), None
    ),
    "result field added without a default": Evolution(
        _release(Req, ResNoteRequired, Req("alice"), ResNoteRequired("x", Status.OK, "hi")),
        "svc.call result note: required field added",
    ),
    "result field removed": Evolution(
        _release(Req, ResBare, Req("alice"), ResBare("x")), "svc.call result status: field removed"
    ),
    "result enum value added (and sent)": Evolution(
        _release(Req, ResPlus, Req("alice"), ResPlus("x", StatusPlus.ARCHIVED)),
        "svc.call result status: enum value 'archived' added",
    ),
    "result enum value removed (old servers still send it)": Evolution(
        _release(Req, ResMinus, Req("alice"), ResMinus("x", StatusMinus.OK)),
        "svc.call result status: enum value 'gone' removed",
        old=_release(Req, Res, Req("alice"), Res("x", Status.GONE)),
    ),
    "result field may now be null (and is)": Evolution(
        _release(Req, ResMaybe, Req("alice"), ResMaybe(None, Status.OK)),
        "svc.call result name: may now be null",
    ),
}


def _calls_work(old: Release, new: Release) -> bool:
    """Both mixed pairs through the transport's own codecs. Each version's client call is
    decoded by the other version's server, and each server's answer by the other's client."""
    old_call, new_call = describe(old.api)["call"], describe(new.api)["call"]
    try:
        new_call.arguments.model_validate_json(old_call.encode_arguments(old.call))
        old_call.arguments.model_validate_json(new_call.encode_arguments(new.call))
        old_call.response.model_validate_json(new_call.encode_result(new.answer))
        new_call.response.model_validate_json(old_call.encode_result(old.answer))
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("evolution", EVOLUTIONS.values(), ids=list(EVOLUTIONS))
def test_the_rules_agree_with_real_calls_between_versions(evolution: Evolution) -> None:
    assert _calls_work(evolution.old, evolution.new) is (evolution.expected is None)
    breaks = breaking_changes(
        describe_api({"svc": evolution.old.api}), describe_api({"svc": evolution.new.api})
    )
    assert [b.key for b in breaks] == ([] if evolution.expected is None else [evolution.expected])
