"""Query strings parsed against a pydantic model, and described in OpenAPI from the same model.

Unknown parameters are a 400, never ignored: a misspelt filter must not silently vanish.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from delinkcious.model.errors import InvalidArgument

Q = TypeVar("Q", bound=BaseModel)


def parse_query(request: Request, model: type[Q]) -> Q:
    params = request.query_params
    unknown = sorted(set(params) - set(model.model_fields))
    if unknown:
        raise InvalidArgument(
            f"unknown query parameter(s): {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(model.model_fields))}",
            code="unknown_parameter",
        )
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


def query_parameters(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route whose query string is ``model``."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    return {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": {k: v for k, v in field.items() if k != "title"},
                **({"description": field["description"]} if "description" in field else {}),
            }
            for name, field in schema["properties"].items()
        ]
    }
