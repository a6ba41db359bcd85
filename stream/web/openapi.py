"""The OpenAPI 3 schema of the store API, generated from the table that builds its routes.

Record schemas come from the store's dataclasses, so a new field shows up without an edit here.
``GET /api/openapi.json`` serves it (behind the access token, like the API it describes).
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import fields
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stream.store import Character, Episode, ExportRecord, Scene, Series, SetRecord, Take, TakeLine
from stream.web.api import ENDPOINTS
from stream.web.auth import token_guard

RECORDS = (Series, Character, SetRecord, Episode, Scene, Take, TakeLine, ExportRecord)
_STRING = {"type": "string"}
_ERROR_REF = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ERRORS = {
    "400": "bad input", "401": "token required", "404": "unknown id", "409": "conflicting state",
    "413": "body too large", "507": "disk full",
}


def _json_type(tp: Any) -> dict[str, Any]:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return {**_json_type(inner[0]), "nullable": True}
    if typing.get_origin(tp) is typing.Literal:
        return {"type": "string", "enum": list(typing.get_args(tp))}
    origin = typing.get_origin(tp) or tp
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", bytes: "string"}
    if origin in (tuple, list):
        return {"type": "array", "items": _json_type(typing.get_args(tp)[0])}
    return {"type": simple.get(origin, "string")}


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "properties": {"error": _STRING, "message": _STRING}, "required": ["error", "message"]}
    }
    for cls in RECORDS:
        hints = typing.get_type_hints(cls)
        schemas[cls.__name__] = {
            "type": "object", "properties": {f.name: _json_type(hints[f.name]) for f in fields(cls)},
        }
    return schemas


def openapi() -> dict[str, Any]:
    """The whole schema: every endpoint of ``ENDPOINTS``, its body, success and error answers."""
    paths: dict[str, Any] = {}
    for ep in ENDPOINTS:
        ok: dict[str, Any] = {"description": "success"}
        if ep.returns:
            ok["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ep.returns}"}}}
        op: dict[str, Any] = {
            "summary": ep.summary,
            # DELETE handlers are made by one factory, so their names do not tell them apart.
            "operationId": ep.handler.__name__ if ep.method != "DELETE" else f"delete_{ep.path.split('/')[2]}",
            "parameters": [
                {"name": p, "in": "path", "required": True, "schema": _STRING} for p in re.findall(r"{(\w+)}", ep.path)
            ] + [{"name": p, "in": "query", "required": p == "name", "schema": _STRING} for p in ep.query],
            "responses": {
                str(ep.status): ok,
                **{status: {"description": what, **_ERROR_REF} for status, what in _ERRORS.items()},
            },
        }
        if ep.body is not None:
            schema = {"type": "object", "properties": ep.body, "required": list(ep.required)}
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        if ep.upload is not None:
            op["requestBody"] = {"required": True, "content": {ep.upload: {"schema": {"type": "string", "format": "binary"}}}}
        paths.setdefault(ep.path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "talkie episode store", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def openapi_route() -> Route:
    """``GET /api/openapi.json``: the schema, built once, behind the access token."""
    schema = openapi()

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(schema)

    return Route("/api/openapi.json", token_guard(openapi_json), methods=["GET"])
