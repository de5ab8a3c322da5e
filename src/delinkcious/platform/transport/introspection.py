"""What a model Protocol looks like on the wire, read once from its signatures.

Server and client both work from this description, so neither has per-method code: a
method's named parameters become one JSON object (validated by a pydantic model built
from the annotations), its result travels as ``{"result": ...}``.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model

from delinkcious.model.markers import is_idempotent

if TYPE_CHECKING:
    from typing_extensions import TypeForm

# A misspelt argument is refused rather than silently dropped (a defect of the original).
_STRICT = ConfigDict(extra="forbid")


class ResultBody(BaseModel):
    """``{"result": ...}``: each method's response model narrows ``result`` to its type."""

    result: Any


@dataclass(frozen=True, slots=True)
class Method:
    """One public async method of a Protocol and the codecs its calls need."""

    name: str
    parameters: Mapping[str, Any]  # name -> resolved annotation, in declaration order
    returns: Any
    idempotent: bool
    signature: inspect.Signature  # without ``self``: the client binds calls as Python does
    arguments: type[BaseModel]  # the request body
    result: TypeAdapter[Any]  # encodes the value the server answers
    response: type[ResultBody]  # decodes ``{"result": ...}`` on the client in one pass

    def encode_arguments(self, arguments: Mapping[str, Any]) -> bytes:
        """Only the arguments the caller gave: the callee's defaults apply, as in-process."""
        body = self.arguments.model_construct(**arguments).model_dump_json(exclude_unset=True)
        return body.encode()

    def encode_result(self, value: Any) -> bytes:
        return b'{"result":' + self.result.dump_json(value) + b"}"


def protocol_class(protocol: TypeForm[Any]) -> type:
    """The class ``protocol`` names. Callers take a ``TypeForm`` because type checkers refuse
    a Protocol class (abstract: it cannot be instantiated) where ``type[P]`` is expected."""
    if not isinstance(protocol, type):
        raise TypeError(f"{protocol!r} is not a Protocol class")
    return protocol


@functools.cache
def describe(protocol: type) -> Mapping[str, Method]:
    """The public async methods of ``protocol``, by name (cached: built once per Protocol).

    Raises TypeError for what cannot travel: a public method that is not async, a missing
    annotation, ``*args``/``**kwargs`` or positional-only parameters.
    """
    methods = {}
    for name, member in inspect.getmembers(protocol, inspect.isfunction):
        if name.startswith("_"):
            continue
        if not inspect.iscoroutinefunction(member):
            raise TypeError(f"{protocol.__name__}.{name} must be async to be served over HTTP")
        methods[name] = _method(protocol, name, member)
    if not methods:
        raise TypeError(f"{protocol.__name__} has no public async methods to serve")
    return MappingProxyType(methods)


def _method(protocol: type, name: str, function: Any) -> Method:
    where = f"{protocol.__name__}.{name}"
    hints = typing.get_type_hints(function)  # resolves `from __future__ import annotations`
    declared = inspect.signature(function)
    signature = declared.replace(parameters=list(declared.parameters.values())[1:])  # no self
    parameters: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise TypeError(f"{where}: parameter {parameter.name} cannot be sent by name")
        if parameter.name not in hints:
            raise TypeError(f"{where}: parameter {parameter.name} has no annotation")
        annotation = hints[parameter.name]
        parameters[parameter.name] = annotation
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    if "return" not in hints:
        raise TypeError(f"{where} has no return annotation")
    returns = hints["return"]
    model_name = f"{protocol.__name__}_{name}"
    return Method(
        name=name,
        parameters=MappingProxyType(parameters),
        returns=returns,
        idempotent=is_idempotent(function),
        signature=signature,
        arguments=create_model(f"{model_name}_arguments", __config__=_STRICT, **fields),
        result=TypeAdapter(returns),
        response=create_model(f"{model_name}_response", __base__=ResultBody, result=(returns, ...)),
    )
