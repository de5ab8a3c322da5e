"""Can release X and X+1 call each other? Two descriptions of the internal API, compared.

During a canary both directions happen. The gateway at X calls links at X+1, and the
gateway at X+1 calls links at X (a rollback too leaves the newer callers talking to older
callees). So every change is judged for both pairs:

- old client → new server: what an X client sends, an X+1 server must accept, and what an
  X+1 server answers, an X client must read;
- new client → old server: the same with the versions swapped.

What counts as compatible follows from what the transport tolerates. Each of these facts
is pinned by a test in ``tests/unit/test_internal_api_compatibility.py``:

- request bodies are strict at every level: an unknown parameter, or an unknown field in a
  dataclass argument, is a 422 (a misspelt filter is refused, never silently dropped);
- a client sends only the top-level parameters its caller gave, but *every* field of a
  dataclass argument, defaults included;
- a client ignores result fields it does not know, at every level, but fails on a missing
  required field, an unknown enum value or a value of another type.

Hence the rules. They say what is *unsafe*: each ``Break`` names who fails.

- A removed service or method breaks it: old clients still call it.
- So does a method that is no longer ``@idempotent``: old clients retry it after a lost
  response, and it would run twice.
- In a request, a removed field, a changed type, a removed enum value or a field that
  became required breaks it (old clients send those values, or leave the field out). So
  does an added enum value, because new clients may send it to old servers. So does an
  added field inside a dataclass argument, even an optional one, because new clients
  always send it and old servers refuse it. A new *optional top-level parameter* is fine:
  it is only sent when a caller passes it. (The one rule no schema can check: do not pass
  it, or call a new method, until every replica of the callee has it.)
- In a result, a removed field or a changed type breaks it (old clients read it), and so
  does an added enum value (old clients refuse it). A removed enum value breaks it too,
  because old servers still answer it to new clients. So does an added field without a
  default: old servers do not send it and new clients require it. An added field *with* a
  default is fine, because old clients ignore it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Part = Literal["request", "result"]

# Keywords that narrow what a schema accepts; any change to one is judged a break.
_CONSTRAINTS = (
    "const",
    "format",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "prefixItems",
)
_NULL = {"type": "null"}


@dataclass(frozen=True, order=True)
class Break:
    """One incompatible change: where, what, and who fails because of it."""

    where: str
    change: str
    why: str

    @property
    def key(self) -> str:
        """Stable name of the break, for acknowledging it deliberately."""
        return f"{self.where}: {self.change}"

    def __str__(self) -> str:
        return f"{self.key} ({self.why})"


def breaking_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Break]:
    """What in API ``new`` breaks a mixed pair with API ``old`` (see the module docstring)."""
    breaks: list[Break] = []
    for service, was in old["services"].items():
        now = new["services"].get(service)
        if now is None:
            breaks.append(Break(service, "service removed", "old clients still call it"))
            continue
        for name, old_method in was["methods"].items():
            where = f"{service}.{name}"
            new_method = now["methods"].get(name)
            if new_method is None:
                breaks.append(Break(where, "method removed", "old clients still call it"))
                continue
            if old_method["idempotent"] and not new_method["idempotent"]:
                breaks.append(
                    Break(
                        where,
                        "no longer idempotent",
                        "old clients still retry it after a lost response: it would run twice",
                    )
                )
            for part in ("request", "result"):
                _Schemas(f"{where} {part}", part, old_method[part], new_method[part], breaks).top()
    return sorted(breaks)


class _Schemas:
    """Walks one old and one new JSON Schema (pydantic's dialect) side by side."""

    def __init__(
        self,
        where: str,
        part: Part,
        old: Mapping[str, Any],
        new: Mapping[str, Any],
        breaks: list[Break],
    ) -> None:
        self._where = where
        self._part = part
        self._old, self._new = old, new
        self._old_defs: Mapping[str, Any] = old.get("$defs", {})
        self._new_defs: Mapping[str, Any] = new.get("$defs", {})
        self._breaks = breaks
        self._seen: set[tuple[str, str]] = set()
        sender, receiver = ("client", "server") if part == "request" else ("server", "client")
        # A value only the old schema accepts / only the new one accepts: who may send it
        # to whom, and fail.
        self._narrowed = f"old {sender}s send it; new {receiver}s refuse it"
        self._widened = f"new {sender}s may send it; old {receiver}s refuse it"

    def top(self) -> None:
        self._node(self._old, self._new, "", top=True)

    def _flag(self, path: str, change: str, why: str) -> None:
        where = f"{self._where} {path}" if path else self._where
        self._breaks.append(Break(where, change, why))

    @staticmethod
    def _resolve(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Mapping[str, Any]:
        """Follow a ``$ref`` into ``$defs``; keywords beside it (a default) are kept."""
        ref = schema.get("$ref")
        if ref is None:
            return schema
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return {**defs[ref.removeprefix("#/$defs/")], **rest}

    @classmethod
    def _split_null(cls, schema: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
        """``X | None`` as (X, True); anything else as (it, False)."""
        options = schema.get("anyOf")
        if options is None or _NULL not in options:
            return schema, False
        others = [option for option in options if option != _NULL]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if len(others) == 1:
            return {**rest, **others[0]}, True
        return {**rest, "anyOf": others}, True

    @staticmethod
    def _kind(schema: Mapping[str, Any]) -> str:
        if "anyOf" in schema:
            return "union"
        kind = schema.get("type", "any")
        return kind if isinstance(kind, str) else "/".join(kind)

    def _node(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str, top: bool) -> None:
        refs = (old.get("$ref", ""), new.get("$ref", ""))
        if all(refs):
            if refs in self._seen:  # compared once already (or a recursive type)
                return
            self._seen.add(refs)
        old, old_null = self._split_null(self._resolve(old, self._old_defs))
        new, new_null = self._split_null(self._resolve(new, self._new_defs))
        old, new = self._resolve(old, self._old_defs), self._resolve(new, self._new_defs)
        if old_null and not new_null:
            self._flag(path, "null no longer accepted", self._narrowed)
        elif new_null and not old_null:
            self._flag(path, "may now be null", self._widened)
        old_kind, new_kind = self._kind(old), self._kind(new)
        if old_kind != new_kind:
            self._flag(path, f"type changed from {old_kind} to {new_kind}", "either side fails")
            return
        if old_kind == "union":
            if _canonical(old["anyOf"], self._old_defs) != _canonical(new["anyOf"], self._new_defs):
                self._flag(path, "union changed", "either side may fail")
            return
        self._enum(old, new, path)
        for keyword in _CONSTRAINTS:
            if old.get(keyword) != new.get(keyword):
                change = f"{keyword} changed from {old.get(keyword)!r} to {new.get(keyword)!r}"
                self._flag(path, change, "the two versions accept different values")
        if old_kind == "array" and "items" in old and "items" in new:
            self._node(old["items"], new["items"], f"{path}[]", top=False)
        elif old_kind == "object":
            self._object(old, new, path, top)

    def _enum(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> None:
        if "enum" not in old and "enum" not in new:
            return
        if "enum" not in old or "enum" not in new:
            self._flag(path, "enum added or removed", "the two versions accept different values")
            return
        for value in old["enum"]:
            if value not in new["enum"]:
                self._flag(path, f"enum value {value!r} removed", self._narrowed)
        for value in new["enum"]:
            if value not in old["enum"]:
                self._flag(path, f"enum value {value!r} added", self._widened)

    def _object(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str, top: bool) -> None:
        old_fields: Mapping[str, Any] = old.get("properties", {})
        new_fields: Mapping[str, Any] = new.get("properties", {})
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        request = self._part == "request"
        for name in old_fields.keys() - new_fields.keys():
            why = "old clients send it; new servers refuse it" if request else "old clients read it"
            self._flag(_join(path, name), "field removed", why)
        for name in new_fields.keys() - old_fields.keys():
            if name in new_required:
                why = (
                    "old clients do not send it"
                    if request
                    else "old servers do not send it; new clients require it"
                )
                self._flag(_join(path, name), "required field added", why)
            elif request and not top:
                self._flag(
                    _join(path, name),
                    "field added to an argument",
                    "new clients send every field of an argument; old servers refuse it",
                )
        for name in old_fields.keys() & new_fields.keys():
            field = _join(path, name)
            if request and name in new_required and name not in old_required:
                self._flag(field, "field became required", "old clients may leave it out")
            if request and top and name in old_required and name not in new_required:
                self._flag(
                    field,
                    "parameter became optional",
                    "new clients may leave it out; old servers require it",
                )
            if request and top and name not in old_required | new_required:
                before, after = old_fields[name].get("default"), new_fields[name].get("default")
                if before != after:
                    self._flag(
                        field,
                        f"default changed from {before!r} to {after!r}",
                        "callers that leave it out get what the serving version picks",
                    )
            self._node(old_fields[name], new_fields[name], field, top=False)
        # A mapping's values (dict[str, X]): compared like any other value.
        old_values, new_values = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(old_values, dict) and isinstance(new_values, dict):
            self._node(old_values, new_values, f"{path}{{}}", top=False)
        elif (isinstance(old_values, dict) or isinstance(new_values, dict)) and (
            old_values != new_values
        ):
            self._flag(path, "mapping values changed", "either side may fail")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _canonical(schema: Any, defs: Mapping[str, Any], depth: int = 0) -> str:
    """A comparable text for a union's branches: refs inlined (to a depth), keys sorted."""

    def inline(node: Any, level: int) -> Any:
        if isinstance(node, list):
            return [inline(item, level) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node and level < 8:
            return inline(_Schemas._resolve(node, defs), level + 1)
        return {key: inline(value, level) for key, value in node.items()}

    return json.dumps(inline(schema, depth), sort_keys=True)
