"""The API documents: current, valid against their specifications, complete, and never built at run time."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing.exceptions import Unresolvable

from e2e.apidocs import (
    asyncapi,
    message_examples,
    openapi,
    validate_action,
    validate_frame,
    validate_http_answer,
)
from selador.http.app import ROUTE_METHODS
from selador.local.apidocs import ASYNCAPI_FILE, OPENAPI_FILE, render_documents
from selador.local.apidocs.__main__ import main
from selador.local.events import http_v2_event
from selador.local.template import load_template
from selador.protocol import ACTIONS, PROTOCOL_VERSION, Frame, QueryRequest, StatusFrame

REPO = Path(__file__).resolve().parents[3]
DOCS = REPO / "docs"
ASYNCAPI_SCHEMA = REPO / "tests" / "schemas" / "asyncapi-3.0.0.json"
ASYNCAPI_SCHEMA_SHA256 = "d4571a420e6ffb7fcc7066c95a6db1202f299a3c51daa103d0706bf30f95e626"
"""@asyncapi/specs 6.11.1, schemas/3.0.0.json (tests/schemas/README.md)."""


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return render_documents()


@pytest.fixture(scope="module")
def asyncapi_validator() -> Draft7Validator:
    raw = ASYNCAPI_SCHEMA.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == ASYNCAPI_SCHEMA_SHA256, "the vendored AsyncAPI schema changed"
    schema = json.loads(raw)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema"
    return Draft7Validator(schema)


@pytest.mark.parametrize("name", [ASYNCAPI_FILE, OPENAPI_FILE])
def test_the_committed_document_is_what_the_code_generates(rendered: dict[str, str], name: str) -> None:
    committed = (DOCS / name).read_text(encoding="utf-8")
    assert committed == rendered[name], f"docs/{name} is stale: run `make docs` and commit it"


def test_check_mode_reports_a_stale_document_and_changes_nothing(
    tmp_path: Path, rendered: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ASYNCAPI_FILE).write_text(rendered[ASYNCAPI_FILE], encoding="utf-8")
    (tmp_path / OPENAPI_FILE).write_text("{}\n", encoding="utf-8")
    assert main(["--out", str(tmp_path), "--check"]) == 1
    assert f"{tmp_path / OPENAPI_FILE} is out of date" in capsys.readouterr().err
    assert (tmp_path / OPENAPI_FILE).read_text(encoding="utf-8") == "{}\n"
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--out", str(tmp_path), "--check"]) == 0
    assert (tmp_path / OPENAPI_FILE).read_text(encoding="utf-8") == rendered[OPENAPI_FILE]


def test_an_out_directory_that_does_not_exist_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--out", str(tmp_path / "nowhere")])
    assert exited.value.code == 2
    assert "is not a directory" in capsys.readouterr().err


# ------------------------------------------------------------------------------ validity


def test_the_asyncapi_document_is_valid_asyncapi_3(asyncapi_validator: Draft7Validator) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in asyncapi_validator.iter_errors(asyncapi())]
    assert errors == []
    assert asyncapi()["asyncapi"] == "3.0.0"


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("operations", "invoke", "action"), "listen"),
        (("components", "schemas", "StatusFrame", "required"), "timestamp"),
        (("channels", "connection", "messages", "status"), "not a message"),
        (("info",), None),
    ],
)
def test_the_asyncapi_schema_catches_a_broken_document(
    asyncapi_validator: Draft7Validator, where: tuple[str, ...], value: Any
) -> None:
    broken = copy.deepcopy(asyncapi())
    parent = broken
    for key in where[:-1]:
        parent = parent[key]
    if value is None:
        del parent[where[-1]]
    else:
        parent[where[-1]] = value
    assert list(asyncapi_validator.iter_errors(broken)), f"{where} = {value!r} went unnoticed"


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    validate(openapi(), cls=OpenAPIV31SpecValidator)
    assert openapi()["openapi"].startswith("3.1.")


def test_the_openapi_validator_catches_a_dangling_reference_and_a_bad_operation() -> None:
    dangling = copy.deepcopy(openapi())
    dangling["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/Nowhere"
    }
    with pytest.raises((OpenAPIValidationError, Unresolvable)):
        validate(dangling, cls=OpenAPIV31SpecValidator)
    no_answers = copy.deepcopy(openapi())
    no_answers["paths"]["/invoke"]["post"]["responses"] = "none"
    with pytest.raises(OpenAPIValidationError):
        validate(no_answers, cls=OpenAPIV31SpecValidator)


# ------------------------------------------------------------------------------ completeness


def _frame_types() -> set[str]:
    """Every ``type`` of the protocol's frame union."""
    union = typing.get_args(Frame)[0]
    return {typing.get_args(model.model_fields["type"].annotation)[0] for model in typing.get_args(union)}


def test_every_action_and_every_frame_type_has_its_message_and_operation() -> None:
    document = asyncapi()
    operations = document["operations"]
    received = {name for name, op in operations.items() if op["action"] == "receive"}
    assert received == set(ACTIONS)
    sent = {ref["$ref"].rsplit("/", 1)[1] for ref in operations["sendFrame"]["messages"]}
    assert sent == _frame_types() | {"apiGatewayMessage"}
    channel = set(document["channels"]["connection"]["messages"])
    assert channel == set(ACTIONS) | sent
    assert set(document["components"]["messages"]) == channel
    for action in ACTIONS:
        schema = document["components"]["schemas"][f"{action.capitalize()}Action"]
        assert schema["properties"]["action"] == {"const": action, "type": "string"}
        assert "action" in schema["required"]


def test_the_invoke_schema_states_the_models_rules() -> None:
    invoke = asyncapi()["components"]["schemas"]["InvokeAction"]
    assert set(invoke["properties"]) == {"action", *QueryRequest.model_fields}
    assert invoke["required"] == ["action", "question"]
    assert invoke["properties"]["query_type"]["enum"] == [
        "general",
        "zoning",
        "building_codes",
        "permits",
        "financing",
    ]
    assert invoke["properties"]["question"]["maxLength"] == 4000
    assert (
        openapi()["components"]["schemas"]["QueryRequest"]["properties"]["query_type"]["enum"][0] == "general"
    )


def test_frame_fields_the_server_leaves_out_are_optional_and_never_null() -> None:
    status = asyncapi()["components"]["schemas"]["StatusFrame"]
    assert status["required"] == ["timestamp", "type", "message"]
    assert status["properties"]["seq"] == {
        "type": "integer",
        "description": status["properties"]["seq"]["description"],
    }
    assert "additionalProperties" not in status, "frames stay open to fields later versions add"


def test_every_message_example_matches_its_payload() -> None:
    examples = message_examples()
    assert {name for name, _ in examples} == set(asyncapi()["components"]["messages"])
    for name, payload in examples:
        if name in ACTIONS:
            validate_action(payload)
        else:
            validate_frame(payload)


def test_the_openapi_document_has_every_route_of_the_function_and_the_template() -> None:
    documented = {(method.upper(), path) for path, item in openapi()["paths"].items() for method in item}
    routed = {(method, path) for path, methods in ROUTE_METHODS.items() for method in methods}
    template = set(load_template(str(REPO / "template.yaml")).http_routes)
    assert documented == routed == template
    for (method, path), operation in (
        ((m, p), openapi()["paths"][p][m.lower()]) for m, p in sorted(documented)
    ):
        assert operation["summary"] != f"{method} {path}", f"{method} {path} has no summary of its own"
        assert operation.get("description"), f"{method} {path} has no description"


def test_the_documents_carry_the_protocol_version() -> None:
    match = re.search(
        r"^Version (\d+\.\d+)\.", (DOCS / "protocol.md").read_text(encoding="utf-8"), re.MULTILINE
    )
    assert match is not None and match.group(1) == PROTOCOL_VERSION
    assert asyncapi()["info"]["version"] == PROTOCOL_VERSION
    assert openapi()["info"]["version"] == PROTOCOL_VERSION


# ------------------------------------------------------------------------------ the checkers


def test_validate_frame_accepts_a_real_frame_and_names_every_mismatch() -> None:
    validate_frame(
        json.loads(
            StatusFrame(message="m", stage="accepted", run_token="rt1.x", request_id="q", seq=1).to_json()
        )
    )
    validate_frame({"message": "Endpoint request timed out", "connectionId": "c=", "requestId": "r="})
    bad = [
        ({"type": "status", "timestamp": 1.0}, "'message' is a required property"),
        (
            {"type": "delta", "content": "x", "timestamp": 1.0, "seq": "2"},
            "seq: '2' is not of type 'integer'",
        ),
        ({"type": "pong", "timestamp": 1.0, "request_id": None}, "request_id: None is not of type 'string'"),
        ({"type": "pong", "timestamp": 1.0, "extra": 1}, "'extra' was unexpected"),
        ({"type": "invoke", "question": "q"}, "frame type 'invoke' is not in docs/asyncapi.yaml"),
        ({"type": "telemetry"}, "frame type 'telemetry' is not in docs/asyncapi.yaml"),
        (["status"], "a frame must be a JSON object"),
    ]
    for frame, expected in bad:
        with pytest.raises(AssertionError) as failed:
            validate_frame(frame)
        assert expected in str(failed.value), (frame, str(failed.value))


def test_validate_action_and_validate_http_answer_name_the_mismatch() -> None:
    validate_action({"action": "resume", "request_id": "q", "after_seq": 3, "run_token": "rt1.x"})
    with pytest.raises(AssertionError, match="after_seq: -1 is less than the minimum of 0"):
        validate_action({"action": "resume", "request_id": "q", "after_seq": -1})
    with pytest.raises(AssertionError, match="not an action"):
        validate_action({"action": "chat"})
    validate_http_answer("DELETE", "/sessions/s-1", 204, "")
    with pytest.raises(AssertionError, match="answered 418, not documented"):
        validate_http_answer("GET", "/runs/q-1", 418, "{}")
    with pytest.raises(AssertionError, match="'status' is a required property"):
        validate_http_answer("GET", "/health", 200, '{"version": "1", "model_provider": "local"}')
    with pytest.raises(AssertionError, match="not an operation"):
        validate_http_answer("PUT", "/invoke", 200, "{}")


# ------------------------------------------------------------------------------ cold starts


def test_the_handler_never_generates_a_document(tmp_path: Path) -> None:
    """Routes carry their OpenAPI fields as data; building the document stays a ``make docs`` job."""
    events = [
        http_v2_event("GET", "/health"),
        http_v2_event("POST", "/invoke", body="{}", headers={"content-type": "application/json"}),
        http_v2_event("GET", "/sessions"),
    ]
    probe = """
import json, sys
from selador.handler import lambda_handler

class Context:
    function_name = "f"
    memory_limit_in_mb = "1024"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
    aws_request_id = "r"

    def get_remaining_time_in_millis(self):
        return 60000

statuses = [lambda_handler(event, Context())["statusCode"] for event in json.load(sys.stdin)]
print(json.dumps({"statuses": statuses, "modules": sorted(sys.modules)}))
"""
    run = subprocess.run(
        [sys.executable, "-c", probe],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "src"), "SQLITE_PATH": str(tmp_path / "s.db")},
        check=True,
    )
    outcome = json.loads(run.stdout.splitlines()[-1])
    assert outcome["statuses"] == [200, 400, 401]
    generators = [
        m
        for m in outcome["modules"]
        if m.startswith("selador.local")
        or m
        in (
            "aws_lambda_powertools.event_handler.openapi.schema_generator",
            "aws_lambda_powertools.event_handler.openapi.models",
        )
    ]
    assert generators == []


def test_the_yaml_is_plain_data() -> None:
    """No anchors or tags a consumer's YAML loader might refuse."""
    text = (DOCS / ASYNCAPI_FILE).read_text(encoding="utf-8")
    assert not re.search(r"[&*]id\d+|!!", text)
    assert yaml.safe_load(text) == asyncapi()
