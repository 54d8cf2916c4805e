"""Check what the tests receive against the committed API documents.

``validate_frame(frame)``: a decoded WebSocket frame against ``docs/asyncapi.yaml`` (the schema of
the message its ``type`` names; a frame without ``type`` must be one of API Gateway's own messages).
``validate_action(message)``: a client message (``invoke``, ``resume``, ``cancel``, ``ping``).
``validate_http_answer(method, path, status, body)``: an HTTP answer against ``docs/openapi.json``
(the route's documented answer for that status).

Stricter than the documents: they leave objects open to fields a later protocol version adds, and
these checks do not, so a field the server sends without documenting it fails here. Every failure
is an ``AssertionError`` naming the document, the schema and each mismatch. Use::

    from e2e.apidocs import validate_frame      # or, inside tests/e2e: from .apidocs import …
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

DOCS = Path(__file__).resolve().parents[2] / "docs"
ASYNCAPI_URI = "urn:selador:asyncapi"
OPENAPI_URI = "urn:selador:openapi"
_SCHEMAS = "#/components/schemas/"


def closed(schema: Any) -> Any:
    """A copy of ``schema`` where every object with ``properties`` allows no other property."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) for key, value in schema.items()}
    if "properties" in result and "additionalProperties" not in result:
        result["additionalProperties"] = False
    return result


@functools.cache
def asyncapi() -> dict[str, Any]:
    """The committed AsyncAPI document."""
    return yaml.safe_load((DOCS / "asyncapi.yaml").read_text(encoding="utf-8"))


@functools.cache
def openapi() -> dict[str, Any]:
    """The committed OpenAPI document."""
    return json.loads((DOCS / "openapi.json").read_text(encoding="utf-8"))


@functools.cache
def _components(uri: str) -> dict[str, Any]:
    document = asyncapi() if uri == ASYNCAPI_URI else openapi()
    return {"schemas": closed(document["components"]["schemas"])}


@functools.lru_cache(maxsize=256)
def _validator(uri: str, schema_json: str) -> Validator:
    """A validator of ``schema``, whose ``#/components/…`` references are the document's."""
    # The schema sits in one resource with the document's components, so that its references
    # (at any depth: a $ref, an anyOf of them) resolve where they point in the document.
    contents = {"components": _components(uri), "subject": closed(json.loads(schema_json))}
    # AsyncAPI's Schema Object is JSON Schema draft 7; OpenAPI 3.1's is draft 2020-12.
    spec, cls = (DRAFT7, Draft7Validator) if uri == ASYNCAPI_URI else (DRAFT202012, Draft202012Validator)
    registry: Registry = Registry().with_resource(
        uri, Resource.from_contents(contents, default_specification=spec)
    )
    return cls({"$ref": uri + "#/subject"}, registry=registry)


def _check(uri: str, schema: dict[str, Any], value: Any, what: str) -> None:
    validator = _validator(uri, json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        problems = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors)
        raise AssertionError(
            f"{what} does not match its schema: {problems}\n  got: {json.dumps(value)[:2000]}"
        )


@functools.cache
def _payloads() -> tuple[dict[str | None, str], dict[str, str]]:
    """Payload schema names by frame ``type`` (``None``: API Gateway's messages), and by action."""
    document = asyncapi()
    frames: dict[str | None, str] = {}
    actions: dict[str, str] = {}
    for message in document["components"]["messages"].values():
        name = message["payload"]["$ref"].removeprefix(_SCHEMAS)
        properties = document["components"]["schemas"][name]["properties"]
        if "action" in properties:
            actions[properties["action"]["const"]] = name
        else:
            frames[properties.get("type", {}).get("const")] = name
    return frames, actions


def validate_frame(frame: Any) -> None:
    """Fail unless ``frame`` (decoded JSON) is a server frame ``docs/asyncapi.yaml`` describes.

    Args:
        frame: A frame as received and decoded.

    Raises:
        AssertionError: naming each mismatch.
    """
    if not isinstance(frame, dict):
        raise AssertionError(f"a frame must be a JSON object, got {json.dumps(frame)[:200]}")
    kind = frame.get("type")
    frames, _ = _payloads()
    name = frames.get(kind) if kind is None or isinstance(kind, str) else None
    if name is None:
        known = sorted(k for k in frames if k is not None)
        raise AssertionError(f"frame type {kind!r} is not in docs/asyncapi.yaml (it has {known})")
    _check(ASYNCAPI_URI, {"$ref": _SCHEMAS + name}, frame, f"{kind or 'API Gateway'} frame ({name})")


def validate_action(message: Any) -> None:
    """Fail unless ``message`` is a client action ``docs/asyncapi.yaml`` describes.

    Args:
        message: The decoded message a client sends.

    Raises:
        AssertionError: naming each mismatch.
    """
    _, actions = _payloads()
    action = message.get("action") if isinstance(message, dict) else None
    if not isinstance(action, str) or action not in actions:
        raise AssertionError(
            f"not an action of docs/asyncapi.yaml ({sorted(actions)}): {json.dumps(message)[:200]}"
        )
    _check(
        ASYNCAPI_URI, {"$ref": _SCHEMAS + actions[action]}, message, f"{action} message ({actions[action]})"
    )


def route_of(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The OpenAPI path template (``/runs/{request_id}``) and operation a request names."""
    for template, item in openapi()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path.split("?")[0]) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not an operation of docs/openapi.json")


def validate_http_answer(method: str, path: str, status: int, body: str | bytes) -> None:
    """Fail unless ``docs/openapi.json`` documents ``status`` for the route and ``body`` matches it.

    Args:
        method: The request's method.
        path: The request's path (``/runs/q-1``; a query string is ignored).
        status: The answer's status.
        body: The answer's body.

    Raises:
        AssertionError: naming what does not match.
    """
    template, operation = route_of(method, path)
    answer = operation["responses"].get(str(status))
    if answer is None:
        documented = sorted(operation["responses"])
        raise AssertionError(f"{method} {template} answered {status}, not documented (only {documented})")
    content = answer.get("content", {}).get("application/json")
    if content is None:
        assert not body, f"{method} {template} {status} is documented without a body, got {body[:200]!r}"
        return
    _check(OPENAPI_URI, content["schema"], json.loads(body), f"{method} {template} {status}")


def message_examples() -> list[tuple[str, dict[str, Any]]]:
    """Every message example of the AsyncAPI document: ``(message name, payload)``."""
    messages = asyncapi()["components"]["messages"]
    return [
        (name, copy.deepcopy(e["payload"])) for name, m in messages.items() for e in m.get("examples", [])
    ]
