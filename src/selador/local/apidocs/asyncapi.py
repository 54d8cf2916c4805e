"""The AsyncAPI 3.0 document of the WebSocket API (``docs/asyncapi.yaml``).

The document describes the API from the server's side: it *receives* the client actions
(``invoke``, ``resume``, ``cancel``, ``ping``) and *sends* the frames (``status``, ``delta``,
``message``, ``result``, ``error``, ``pong``), all on one channel, the connection. Every payload
schema is generated from the protocol's models (:mod:`selador.protocol`, by the rules of
:mod:`selador.local.apidocs.schemas`): an action's schema is its model's plus the ``action`` that
API Gateway's route selection (``$request.body.action``) reads. Only ``ping`` has no model (its
route reads nothing but an optional ``request_id``), and API Gateway's own messages are modelled
here. The examples (:mod:`selador.local.apidocs.examples`) are built with the models.
"""

from __future__ import annotations

import typing
from typing import Any

import yaml
from pydantic import BaseModel

from selador.local.apidocs.examples import GATEWAY_MESSAGE, message_examples
from selador.local.apidocs.schemas import component_schemas, markdown
from selador.protocol import (
    ACTIONS,
    MAX_REQUEST_ID_CHARS,
    PROTOCOL_VERSION,
    Frame,
    QueryRequest,
    RunCommand,
)

CHANNEL = "connection"
FRAMES: dict[str, type[BaseModel]] = {
    model.model_fields["type"].default: model for model in typing.get_args(typing.get_args(Frame)[0])
}
"""Every frame ``type`` and its model, from the protocol's union of frames (a new one is documented
as soon as it joins the union)."""


class ApiGatewayMessage(BaseModel):
    """A message API Gateway sends itself, without ``type``: log it and carry on.

    ``Internal server error`` (a route failed) or ``Endpoint request timed out`` (a route took over
    29 seconds; the answer keeps streaming).
    """

    message: str
    connectionId: str | None = None
    requestId: str | None = None
    """API Gateway's id of the message that failed (not a ``request_id``)."""


_ACTIONS: dict[str, dict[str, Any]] = {
    "invoke": {
        "title": "Ask a question",
        "summary": "Starts a run; its frames follow, from `status` (`accepted`, with the `run_token`) "
        "to exactly one terminal `result` or `error`.",
        "replies": ["status", "delta", "message", "result", "error"],
    },
    "resume": {
        "title": "Follow a run again",
        "summary": "Replays every frame of the run after `after_seq`, then sends its live frames here.",
        "replies": ["status", "delta", "message", "result", "error"],
    },
    "cancel": {
        "title": "Stop a run",
        "summary": "The run ends with one `result` whose `data.stop_reason` is `cancelled`; an ended "
        "run answers `error` `not_running`.",
        "replies": ["result", "error"],
    },
    "ping": {
        "title": "Keep the connection alive",
        "summary": "Answers one `pong`. API Gateway closes a connection idle for 10 minutes; "
        "WebSocket pings do not count.",
        "replies": ["pong"],
    },
}


def _action_schema(action: str, base: dict[str, Any] | None, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A model's schema with ``action`` first, required (the route selection reads it)."""
    base = base or {"type": "object", "properties": {}}
    properties = {k: v for k, v in base["properties"].items() if k not in drop}
    schema = {
        "title": action.capitalize() + "Action",
        "type": "object",
        "description": base.get("description", ""),
        "properties": {"action": {"const": action, "type": "string"}, **properties},
        "required": ["action", *(name for name in base.get("required", []) if name not in drop)],
    }
    if not schema["description"]:
        del schema["description"]
    return schema


def _payload_schemas() -> dict[str, dict[str, Any]]:
    models = component_schemas(
        inbound=[QueryRequest, RunCommand], outbound=[*FRAMES.values(), ApiGatewayMessage]
    )
    query, command = models.pop("QueryRequest"), models.pop("RunCommand")
    ping = {
        "type": "object",
        "description": "A keep-alive.",
        "properties": {
            "request_id": {
                "type": "string",
                "maxLength": MAX_REQUEST_ID_CHARS,
                "description": "Sent back in the `pong` when it is 1-64 printable characters.",
            }
        },
    }
    actions = {
        "InvokeAction": _action_schema("invoke", query),
        "ResumeAction": _action_schema("resume", command),
        # after_seq means nothing to cancel (it is ignored, like any unknown field).
        "CancelAction": _action_schema("cancel", command, drop=("after_seq",)),
        "PingAction": _action_schema("ping", ping),
    }
    actions["CancelAction"]["description"] = "A command about an existing run: stop it."
    return dict(sorted((models | actions).items()))


def _message(name: str, schema: str, title: str, summary: str, correlated: bool = True) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{schema}"},
    }
    if correlated:
        message["correlationId"] = {"$ref": "#/components/correlationIds/requestId"}
    return message


def _messages(schemas: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    messages = {}
    for action, about in _ACTIONS.items():
        messages[action] = _message(action, action.capitalize() + "Action", about["title"], about["summary"])
    for frame_type, model in FRAMES.items():
        summary = schemas[model.__name__].get("description", "")
        messages[frame_type] = _message(frame_type, model.__name__, f"{frame_type} frame", summary)
    messages[GATEWAY_MESSAGE] = _message(
        GATEWAY_MESSAGE,
        ApiGatewayMessage.__name__,
        "API Gateway's own message",
        markdown(ApiGatewayMessage.__doc__ or "").split("\n\n")[0],
        correlated=False,
    )
    for name, examples in message_examples().items():
        messages[name]["examples"] = examples
    return messages


def _operations() -> dict[str, dict[str, Any]]:
    channel = {"$ref": f"#/channels/{CHANNEL}"}

    def refs(names: list[str]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{CHANNEL}/messages/{name}"} for name in names]

    operations: dict[str, dict[str, Any]] = {}
    for action, about in _ACTIONS.items():
        operations[action] = {
            "action": "receive",
            "channel": channel,
            "title": about["title"],
            "summary": about["summary"],
            "messages": refs([action]),
            "reply": {"channel": channel, "messages": refs(about["replies"])},
        }
    operations["sendFrame"] = {
        "action": "send",
        "channel": channel,
        "title": "Frames",
        "summary": "Every frame the server sends; order a run's frames by `seq` and drop a `seq` seen "
        "before (delivery is at least once).",
        "messages": refs([*FRAMES, GATEWAY_MESSAGE]),
    }
    return operations


INFO_DESCRIPTION = f"""\
Ask questions and receive their answers as they are written, over one WebSocket connection.

Every message is a JSON object; `action` picks the route. Every frame has `type` and `timestamp`;
the frames of a run also carry `request_id` and `seq` (1, 2, 3… per run, no gaps): `status`
first, then `status` / `delta` / `message`, then exactly one terminal `result` or `error`. An
`error` about a message rather than a run carries no `seq`. Runs outlive their connection:
`resume` replays a run's frames after a `seq` and follows it; `cancel` stops it.

New fields, actions and frame types may appear (additions only): ignore what you do not know.
The rules in full: `docs/protocol.md`, version {PROTOCOL_VERSION}."""


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the WebSocket API.

    Returns:
        The document, as YAML- and JSON-ready data.
    """
    schemas = _payload_schemas()
    actions = [f"`{a}`" for a in ACTIONS]
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Selador WebSocket API",
            "version": PROTOCOL_VERSION,
            "description": INFO_DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "aws": {
                "host": "{apiId}.execute-api.{region}.amazonaws.com",
                "protocol": "wss",
                "title": "A deployed stack",
                "description": "The stack output WebSocketURL. Authenticated: a JWT in `?token=` or an "
                "`Authorization: Bearer` header on the handshake (401 without, 403 when invalid).",
                "variables": {
                    "apiId": {"default": "abcdef1234", "description": "The WebSocket API's id."},
                    "region": {"default": "us-east-1", "description": "The stack's region."},
                },
                "security": [
                    {"$ref": "#/components/securitySchemes/queryToken"},
                    {"$ref": "#/components/securitySchemes/bearer"},
                ],
            },
            "local": {
                "host": "127.0.0.1:3001",
                "protocol": "ws",
                "title": "`make serve`",
                "description": "The local gateway; anonymous unless it runs with `AUTH_MODE=jwt`.",
            },
        },
        "channels": {
            CHANNEL: {
                "address": "/{stage}",
                "title": "A connection",
                "description": "Every action and frame travels on the one connection; several runs "
                f"may share it (tell their frames apart by `request_id`). Actions: {', '.join(actions)}.",
                "parameters": {"stage": {"default": "production", "description": "The API's stage."}},
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in _message_names()},
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "properties": {
                                "token": {
                                    "type": "string",
                                    "description": "A JWT, when the server authenticates.",
                                }
                            },
                        },
                        "bindingVersion": "0.1.0",
                    }
                },
            }
        },
        "operations": _operations(),
        "components": {
            "schemas": schemas,
            "messages": _messages(schemas),
            "securitySchemes": {
                "queryToken": {
                    "type": "httpApiKey",
                    "name": "token",
                    "in": "query",
                    "description": "A JWT of the stack's issuer in the handshake's query string (browsers).",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A JWT of the stack's issuer in the handshake's `Authorization` header.",
                },
            },
            "correlationIds": {
                "requestId": {
                    "description": "The run a message or frame belongs to.",
                    "location": "$message.payload#/request_id",
                }
            },
        },
    }


def _message_names() -> list[str]:
    return [*_ACTIONS, *FRAMES, GATEWAY_MESSAGE]


class _Dumper(yaml.SafeDumper):
    """Block style for text of several lines (descriptions), so the file reads like the docs."""

    def ignore_aliases(self, data: Any) -> bool:
        """Always: a ``&id001`` anchor for a repeated ``$ref`` would only puzzle a reader."""
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)

HEADER = """\
# The AsyncAPI 3.0 document of Selador's WebSocket API. Generated from src/selador/protocol.py by
# `make docs` (python -m selador.local.apidocs): do not edit; tests/unit/apidocs fails when it is stale.
"""


def asyncapi_yaml() -> str:
    """``docs/asyncapi.yaml``: the document as YAML, keys in the document's order."""
    body = yaml.dump(asyncapi_document(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return HEADER + body
