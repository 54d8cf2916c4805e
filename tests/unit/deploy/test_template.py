"""Offline checks of template.yaml, samconfig.toml and events/*.json.

What sam validate, cfn-lint and checkov cannot know: that the template's routes are exactly the
handler's, that IAM names only this stack's resources, and that the Bedrock statements come out
right for every shape of ``ModelArn`` (evaluated with the template's own conditions).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)

from selador.local.events import select_route
from selador.local.template import load_template, load_yaml, resolve_value

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE_PATH = ROOT / "template.yaml"
ACCOUNT = "123456789012"

# Statements allowed a "*" Action or Resource, each with the reason the facts require it. Empty:
# every statement names its resources (X-Ray, which only accepts "*", is not enabled).
WILDCARD_EXCEPTIONS: dict[str, str] = {}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_yaml(TEMPLATE_PATH)


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == kind}


def props(template: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(template["Resources"][name]["Properties"])


# ----------------------------------------------------------------------------- route parity


def test_websocket_routes_match_the_handler() -> None:
    from selador.handler import WEBSOCKET_ROUTES

    keys = load_template(TEMPLATE_PATH).websocket_route_keys
    assert len(keys) == len(set(keys)), f"duplicate route keys in the template: {keys}"
    missing_in_handler = set(keys) - set(WEBSOCKET_ROUTES)
    missing_in_template = set(WEBSOCKET_ROUTES) - set(keys)
    assert not missing_in_handler, f"template routes with no handler branch: {sorted(missing_in_handler)}"
    assert not missing_in_template, f"handler routes with no template route: {sorted(missing_in_template)}"


def test_http_routes_match_the_handler() -> None:
    from selador.handler import HTTP_ROUTES

    routes = [f"{method} {path}" for method, path in load_template(TEMPLATE_PATH).http_routes]
    assert len(routes) == len(set(routes))
    assert set(routes) - set(HTTP_ROUTES) == set(), "template routes with no handler branch"
    assert set(HTTP_ROUTES) - set(routes) == set(), "handler routes with no template route"


# ----------------------------------------------------------------------------------- function


def test_function_settings(template: dict[str, Any]) -> None:
    fn = props(template, "MainLambda")
    assert fn["Runtime"] == "python3.13"
    assert fn["Handler"] == "selador.handler.lambda_handler"
    assert fn["Architectures"] == ["arm64"]
    assert fn["Timeout"] == {"Ref": "FunctionTimeout"}
    assert fn["MemorySize"] == {"Ref": "FunctionMemorySize"}
    assert "FunctionName" not in fn, "the name is derived from the stack"
    params = template["Parameters"]
    assert params["FunctionTimeout"]["Default"] == 900
    assert params["FunctionMemorySize"]["Default"] == 1024
    assert params["StageName"]["Default"] == "production"
    config = load_template(TEMPLATE_PATH).function
    assert (config.timeout, config.memory_size) == (900, 1024)


def test_function_environment(template: dict[str, Any]) -> None:
    variables = props(template, "MainLambda")["Environment"]["Variables"]
    assert variables == {
        "LOG_LEVEL": {"Ref": "LogLevel"},
        "POWERTOOLS_SERVICE_NAME": "selador",
        "MODEL_ARN": {"Ref": "ModelArn"},
        "KNOWLEDGE_BASE_ID": {"Ref": "KnowledgeBaseId"},
        "CONNECTIONS_TABLE": {"Ref": "ConnectionsTable"},
        "WEBSOCKET_MANAGEMENT_ENDPOINT": {
            "Fn::Sub": "https://${WebSocketApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}"
        },
        "RUN_MODE": "async",
        "LIMIT_RUNNING_ANSWERS": {"Ref": "RunningAnswersLimit"},
        "AUTH_MODE": {"Fn::If": ["HasAuthIssuer", "jwt", "none"]},
        "AUTH_ISSUER": {"Ref": "AuthIssuer"},
        "AUTH_AUDIENCE": {"Ref": "AuthAudience"},
        "AUTH_JWKS_URL": {
            "Fn::If": [
                "HasAuthJwksUrl",
                {"Ref": "AuthJwksUrl"},
                {"Fn::Sub": "${AuthIssuer}/.well-known/jwks.json"},
            ]
        },
    }


def test_every_environment_variable_is_a_setting(template: dict[str, Any]) -> None:
    from selador.settings import Settings

    names = {name.upper() for name in Settings.model_fields}
    names |= {str(f.validation_alias).upper() for f in Settings.model_fields.values() if f.validation_alias}
    variables = props(template, "MainLambda")["Environment"]["Variables"]
    assert set(variables) <= names, f"variables Settings does not read: {set(variables) - names}"


def test_async_invocations_are_not_retried(template: dict[str, Any]) -> None:
    config = props(template, "MainLambda")["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 0


def test_failed_jobs_go_to_an_encrypted_queue_that_the_function_reads(template: dict[str, Any]) -> None:
    config = props(template, "MainLambda")["EventInvokeConfig"]
    assert config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["FailedJobsQueue", "Arn"]},
    }
    queue = props(template, "FailedJobsQueue")
    assert queue["SqsManagedSseEnabled"] is True
    # Covers a run's life: its pending lease, one invocation and its log's TTL (default 1 h).
    assert queue["MessageRetentionPeriod"] >= 3 * 3600
    # An SQS event source needs a visibility timeout of at least the function's timeout.
    assert queue["VisibilityTimeout"] == props(template, "MainLambda")["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["FailedJobsDeadLetterQueue", "Arn"]
    }
    dead = props(template, "FailedJobsDeadLetterQueue")
    assert dead["SqsManagedSseEnabled"] is True
    assert dead["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    assert "RedrivePolicy" not in dead
    mappings = resources_of_type(template, "AWS::Lambda::EventSourceMapping")
    assert set(mappings) == {"FailedJobsEventSource"}
    mapping = props(template, "FailedJobsEventSource")
    assert mapping["FunctionName"] == {"Ref": "MainLambda"}
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["FailedJobsQueue", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= mapping["BatchSize"] <= 10
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == 2


def test_log_groups_have_retention(template: dict[str, Any]) -> None:
    groups = resources_of_type(template, "AWS::Logs::LogGroup")
    assert set(groups) == {"MainLambdaLogGroup", "WebSocketAccessLogGroup", "HttpApiAccessLogGroup"}
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert props(template, "MainLambda")["LoggingConfig"]["LogGroup"] == {"Ref": "MainLambdaLogGroup"}


# --------------------------------------------------------------------------------- WebSocket


def test_websocket_api_shape(template: dict[str, Any]) -> None:
    api = props(template, "WebSocketApi")
    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == "$request.body.action"
    integrations = resources_of_type(template, "AWS::ApiGatewayV2::Integration")
    assert list(integrations) == ["WebSocketIntegration"], "one proxy integration for every route"
    integration = integrations["WebSocketIntegration"]["Properties"]
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert "${MainLambda.Arn}" in integration["IntegrationUri"]["Fn::Sub"]
    routes = resources_of_type(template, "AWS::ApiGatewayV2::Route")
    for route in routes.values():
        assert route["Properties"]["ApiId"] == {"Ref": "WebSocketApi"}
        assert route["Properties"]["Target"] == {"Fn::Sub": "integrations/${WebSocketIntegration}"}


def test_websocket_stage(template: dict[str, Any]) -> None:
    stage = props(template, "WebSocketStage")
    assert stage["StageName"] == {"Ref": "StageName"}
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert stage["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["WebSocketAccessLogGroup", "Arn"]}
    json.loads(stage["AccessLogSettings"]["Format"])  # a JSON access-log line


def test_invoke_permissions_are_scoped_by_source_arn(template: dict[str, Any]) -> None:
    permissions = resources_of_type(template, "AWS::Lambda::Permission")
    assert permissions, "the WebSocket API needs an invoke permission"
    for permission in permissions.values():
        p = permission["Properties"]
        assert p["Principal"] == "apigateway.amazonaws.com"
        assert p["SourceArn"]["Fn::Sub"].endswith(":${WebSocketApi}/${StageName}/*")


def test_http_api(template: dict[str, Any]) -> None:
    api = props(template, "HttpApi")
    assert template["Resources"]["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    assert "CorsConfiguration" in api
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["HttpApiAccessLogGroup", "Arn"]}
    events = props(template, "MainLambda")["Events"]
    assert {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events.values()} == {
        ("POST", "/invoke"),
        ("POST", "/runs"),
        ("GET", "/runs/{request_id}"),
        ("DELETE", "/runs/{request_id}"),
        ("GET", "/sessions"),
        ("GET", "/sessions/{session_id}"),
        ("DELETE", "/sessions/{session_id}"),
        ("GET", "/health"),
    }
    assert all(e["Properties"]["ApiId"] == {"Ref": "HttpApi"} for e in events.values())
    # Every route that touches a run or the model is behind the JWT authorizer; health is open.
    for event in events.values():
        authorised = event["Properties"].get("Auth", {}).get("Authorizer") == "OidcJwt"
        assert authorised == (event["Properties"]["Path"] != "/health"), event
    cors = api["CorsConfiguration"]
    assert "DELETE" in cors["AllowMethods"] and "X-Run-Token" in cors["AllowHeaders"]
    assert cors["ExposeHeaders"] == ["Location"]


# ----------------------------------------------------------------------------------- DynamoDB


def test_table(template: dict[str, Any]) -> None:
    table = props(template, "ConnectionsTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    # pk alone, always: changing the key schema would replace the deployed table (and its data).
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_table_sessions_index_is_the_stores() -> None:
    """The template's index and attribute definitions are the ones create_table_if_missing builds."""
    from selador.store.dynamodb_session_items import SESSIONS_INDEX, SESSIONS_INDEX_ATTRIBUTES

    table = props(load_yaml(TEMPLATE_PATH), "ConnectionsTable")
    assert table["GlobalSecondaryIndexes"] == [SESSIONS_INDEX]
    assert table["AttributeDefinitions"] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        *SESSIONS_INDEX_ATTRIBUTES,
    ]


# ---------------------------------------------------------------------------------------- IAM


def _walk_statements(value: Any) -> Iterator[dict[str, Any]]:
    """Every statement in a policy document, through both branches of each Fn::If."""
    if isinstance(value, dict):
        if "Fn::If" in value:
            for branch in value["Fn::If"][1:]:
                yield from _walk_statements(branch)
        elif "Effect" in value:
            yield value
    elif isinstance(value, list):
        for item in value:
            yield from _walk_statements(item)


def _all_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for res in template["Resources"].values():
        p = res.get("Properties") or {}
        for policy in p.get("Policies") or []:
            if isinstance(policy, dict) and "PolicyDocument" in policy:
                statements += _walk_statements(policy["PolicyDocument"]["Statement"])
        if res["Type"] in {"AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            statements += _walk_statements(p["PolicyDocument"]["Statement"])
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resource_strings(resource: Any) -> Iterator[str]:
    if isinstance(resource, str):
        yield resource
    elif isinstance(resource, dict):
        if "Fn::Sub" in resource:
            sub = resource["Fn::Sub"]
            yield sub if isinstance(sub, str) else sub[0]
        elif "Fn::If" in resource:
            for branch in resource["Fn::If"][1:]:
                yield from _resource_strings(branch)
    elif isinstance(resource, list):
        for item in resource:
            yield from _resource_strings(item)


def test_no_wildcard_actions_or_resources(template: dict[str, Any]) -> None:
    statements = _all_statements(template)
    assert len(statements) >= 6
    for statement in statements:
        sid = statement.get("Sid", "?")
        if sid in WILDCARD_EXCEPTIONS:
            continue
        for action in _as_list(statement["Action"]):
            assert action != "*" and not action.endswith(":*"), f"{sid}: wildcard action {action}"
        for resource in _resource_strings(statement.get("Resource")):
            assert resource != "*", f"{sid}: Resource '*'"


def test_no_managed_policies_on_the_function_role(template: dict[str, Any]) -> None:
    role = props(template, "MainLambdaRole")
    assert "ManagedPolicyArns" not in role, "managed policies bring Resource '*' statements"
    assert props(template, "MainLambda")["Role"] == {"Fn::GetAtt": ["MainLambdaRole", "Arn"]}


def _statement(template: dict[str, Any], sid: str) -> dict[str, Any]:
    (found,) = [s for s in _all_statements(template) if s.get("Sid") == sid]
    return found


def test_manage_connections_only_on_this_api(template: dict[str, Any]) -> None:
    statement = _statement(template, "PostToThisApiConnections")
    assert statement["Action"] == "execute-api:ManageConnections"
    arn = statement["Resource"]["Fn::Sub"]
    assert arn == (
        "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
        "${WebSocketApi}/${StageName}/*/@connections/*"
    )


def test_dynamodb_item_actions_on_the_table_only(template: dict[str, Any]) -> None:
    statement = _statement(template, "ConnectionsTableItems")
    item_actions = {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
    }
    assert set(statement["Action"]) <= item_actions
    assert statement["Resource"] == {"Fn::GetAtt": ["ConnectionsTable", "Arn"]}


def test_dynamodb_query_only_on_the_sessions_index(template: dict[str, Any]) -> None:
    from selador.store.dynamodb_session_items import SESSIONS_INDEX_NAME

    statement = _statement(template, "ConnectionsTableSessionsIndex")
    assert statement["Action"] == "dynamodb:Query"
    assert statement["Resource"] == {"Fn::Sub": f"${{ConnectionsTable.Arn}}/index/{SESSIONS_INDEX_NAME}"}
    queries = [s for s in _all_statements(template) if "dynamodb:Query" in _as_list(s["Action"])]
    assert queries == [statement], "only the index may be queried"


def test_self_invoke_only(template: dict[str, Any]) -> None:
    statement = _statement(template, "AsyncHandOffToSelf")
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == {"Fn::GetAtt": ["MainLambda", "Arn"]}


def test_failed_job_queue_statements_name_that_queue_only(template: dict[str, Any]) -> None:
    queue = {"Fn::GetAtt": ["FailedJobsQueue", "Arn"]}
    send = _statement(template, "SendFailedJobRecords")
    assert send["Action"] == "sqs:SendMessage"
    assert send["Resource"] == queue
    read = _statement(template, "ReadFailedJobRecords")
    assert read["Action"] == ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    assert read["Resource"] == queue
    # Nothing else in the role touches SQS: the dead-letter queue is for an operator only.
    sqs = [
        s.get("Sid")
        for s in _all_statements(template)
        if any(a.startswith("sqs:") for a in _as_list(s["Action"]))
    ]
    assert sorted(sqs) == ["ReadFailedJobRecords", "SendFailedJobRecords"]


def _bedrock_statements(template: dict[str, Any], **overrides: str) -> dict[str, Any]:
    """The Bedrock statements as CloudFormation would resolve them for these parameter values."""
    document = props(template, "MainLambdaRole")["Policies"][0]["PolicyDocument"]["Statement"]
    wanted = {"InvokeConfiguredModel", "InvokeProfileDestinationModels", "RetrieveFromKnowledgeBase"}
    fragments = [s for s in document if isinstance(s, dict) and "Fn::If" in s]
    resolved = resolve_value(
        template, fragments, {"AWS::AccountId": ACCOUNT, "AWS::Region": "us-west-2", **overrides}
    )
    return {s["Sid"]: s for s in resolved if s.get("Sid") in wanted}


FM = "arn:aws:bedrock:{region}::foundation-model/{model}"
SONNET = "anthropic.claude-sonnet-4-20250514-v1:0"
HAIKU = "anthropic.claude-3-5-haiku-20241022-v1:0"
US_REGIONS = ("us-east-1", "us-east-2", "us-west-2")


def test_bedrock_default_us_inference_profile(template: dict[str, Any]) -> None:
    statements = _bedrock_statements(template)
    assert set(statements) == {"InvokeConfiguredModel", "InvokeProfileDestinationModels"}
    model = statements["InvokeConfiguredModel"]
    assert model["Action"] == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    assert model["Resource"] == f"arn:aws:bedrock:us-west-2:{ACCOUNT}:inference-profile/us.{SONNET}"
    destinations = statements["InvokeProfileDestinationModels"]["Resource"]
    assert destinations == [FM.format(region=r, model=SONNET) for r in US_REGIONS]


def test_bedrock_inference_profile_arn(template: dict[str, Any]) -> None:
    arn = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.{HAIKU}"
    statements = _bedrock_statements(template, ModelArn=arn)
    assert statements["InvokeConfiguredModel"]["Resource"] == arn
    assert statements["InvokeProfileDestinationModels"]["Resource"] == [
        FM.format(region=r, model=HAIKU) for r in US_REGIONS
    ]


def test_bedrock_non_us_profile_keeps_the_model_exact(template: dict[str, Any]) -> None:
    statements = _bedrock_statements(template, ModelArn=f"eu.{SONNET}")
    assert statements["InvokeConfiguredModel"]["Resource"] == (
        f"arn:aws:bedrock:us-west-2:{ACCOUNT}:inference-profile/eu.{SONNET}"
    )
    assert statements["InvokeProfileDestinationModels"]["Resource"] == FM.format(region="*", model=SONNET)


def test_bedrock_foundation_model_id_and_arn(template: dict[str, Any]) -> None:
    statements = _bedrock_statements(template, ModelArn=HAIKU)
    assert set(statements) == {"InvokeConfiguredModel"}
    assert statements["InvokeConfiguredModel"]["Resource"] == FM.format(region="us-west-2", model=HAIKU)
    arn = FM.format(region="us-east-1", model=HAIKU)
    statements = _bedrock_statements(template, ModelArn=arn)
    assert set(statements) == {"InvokeConfiguredModel"}
    assert statements["InvokeConfiguredModel"]["Resource"] == arn


def test_bedrock_no_model_no_statement(template: dict[str, Any]) -> None:
    assert _bedrock_statements(template, ModelArn="") == {}


def test_reserved_concurrency_is_reserved_only_when_given(template: dict[str, Any]) -> None:
    setting = props(template, "MainLambda")["ReservedConcurrentExecutions"]
    assert resolve_value(template, setting, {"ReservedConcurrency": "40"}) == "40"
    unset = resolve_value(template, {"x": setting}, {"ReservedConcurrency": ""})
    assert "x" not in unset, "empty must reserve nothing (AWS::NoValue), never 0"
    pattern = re.compile(template["Parameters"]["ReservedConcurrency"]["AllowedPattern"])
    assert pattern.fullmatch("") and pattern.fullmatch("40")
    assert not pattern.fullmatch("0") and not pattern.fullmatch("-1"), "0 would throttle every request"


def test_knowledge_base_statement_only_with_an_id(template: dict[str, Any]) -> None:
    assert "RetrieveFromKnowledgeBase" not in _bedrock_statements(template)
    statement = _bedrock_statements(template, KnowledgeBaseId="ABCDEFGHIJ")["RetrieveFromKnowledgeBase"]
    assert statement["Action"] == "bedrock:Retrieve"
    assert statement["Resource"] == f"arn:aws:bedrock:us-west-2:{ACCOUNT}:knowledge-base/ABCDEFGHIJ"


# ------------------------------------------------------------------------------------ outputs


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {"WebSocketURL", "ManagementEndpoint", "HttpApiUrl", "MainLambdaArn"} <= set(outputs)
    ws = outputs["WebSocketURL"]["Value"]["Fn::Sub"]
    assert ws.startswith("wss://${WebSocketApi}.execute-api.") and ws.endswith("/${StageName}")
    management = outputs["ManagementEndpoint"]["Value"]["Fn::Sub"]
    assert management == ws.replace("wss://", "https://", 1)
    assert outputs["HttpApiUrl"]["Value"]["Fn::Sub"].startswith("https://${HttpApi}.execute-api.")
    assert outputs["MainLambdaArn"]["Value"] == {"Fn::GetAtt": ["MainLambda", "Arn"]}
    assert outputs["FailedJobsQueueUrl"]["Value"] == {"Ref": "FailedJobsQueue"}
    assert outputs["FailedJobsDeadLetterQueueUrl"]["Value"] == {"Ref": "FailedJobsDeadLetterQueue"}


def test_checkov_skips_are_justified(template: dict[str, Any]) -> None:
    for name, res in template["Resources"].items():
        for skip in ((res.get("Metadata") or {}).get("checkov") or {}).get("skip") or []:
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), f"{name}: {skip}"
            assert len(skip.get("comment", "")) > 30, f"{name}: {skip['id']} needs a reason"


# ------------------------------------------------------------------------ packaging and config


# src/requirements.txt is the bundle's hashed lock: tests/unit/deploy/test_locks.py checks it
# against pyproject.toml and the dev lock.


def test_code_uri_holds_the_requirements(template: dict[str, Any]) -> None:
    code_uri = props(template, "MainLambda")["CodeUri"]
    assert (ROOT / code_uri / "requirements.txt").is_file()
    assert (ROOT / code_uri / "selador" / "handler.py").is_file()


def test_samconfig() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    default = config["default"]
    assert default["global"]["parameters"]["region"] == "us-west-2"
    assert default["global"]["parameters"]["stack_name"]
    deploy = default["deploy"]["parameters"]
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    assert deploy["confirm_changeset"] is True
    assert deploy["resolve_s3"] is True
    assert "ModelArn=" in deploy["parameter_overrides"]
    assert default["validate"]["parameters"]["lint"] is True
    assert default["build"]["parameters"] == {"cached": True, "parallel": True}


# ------------------------------------------------------------------------------------- events

WS_MODELS = {
    "ws_connect": APIGatewayWebSocketConnectEventModel,
    "ws_invoke": APIGatewayWebSocketMessageEventModel,
    "ws_ping": APIGatewayWebSocketMessageEventModel,
    "ws_default": APIGatewayWebSocketMessageEventModel,
    "ws_disconnect": APIGatewayWebSocketDisconnectEventModel,
}
HTTP_EVENTS = ("http_invoke", "http_health")


def _event(name: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / "events" / f"{name}.json").read_text()))


def test_events_directory_is_complete() -> None:
    names = {p.stem for p in (ROOT / "events").glob("*.json")}
    assert names == set(WS_MODELS) | set(HTTP_EVENTS)


@pytest.mark.parametrize("name", sorted(WS_MODELS))
def test_websocket_events_parse_and_route(name: str) -> None:
    event = _event(name)
    WS_MODELS[name].model_validate(event)
    route_key = event["requestContext"]["routeKey"]
    config = load_template(TEMPLATE_PATH)
    assert route_key in config.websocket_route_keys
    assert event["requestContext"]["stage"] == config.stage_name
    if "body" in event:
        # The route key is what API Gateway's selection would have chosen for the body.
        assert select_route(event["body"], config.websocket_route_keys) == route_key


@pytest.mark.parametrize("name", HTTP_EVENTS)
def test_http_events_parse_and_route(name: str) -> None:
    event = _event(name)
    APIGatewayProxyEventV2Model.model_validate(event)
    routes = {f"{m} {p}" for m, p in load_template(TEMPLATE_PATH).http_routes}
    assert event["routeKey"] in routes


def test_ws_invoke_body() -> None:
    assert json.loads(_event("ws_invoke")["body"]) == {
        "action": "invoke",
        "question": "What are the zoning requirements for residential development?",
        "context": "Looking at a property in Capitol Hill area",
        "query_type": "zoning",
        "request_id": "q-17",
    }


def test_websocket_events_share_one_connection() -> None:
    ids = {_event(name)["requestContext"]["connectionId"] for name in WS_MODELS}
    assert len(ids) == 1


# ---------------------------------------------------------------------------------- operations

# metrics.count("X") / metrics.add("X", …) anywhere, or count("X") inside selador.metrics itself.
EMITTED = re.compile(r"""(?:\bmetrics\.|(?<![.\w]))(?:count|add)\(\s*["'](\w+)["']""")
SELADOR_METRIC = re.compile(r'MetricName=\\?"(\w+)\\?"|SUM\((\w+)\)')


def _emitted_metrics() -> set[str]:
    """Every metric name the code emits (metrics.count / metrics.add with a literal name)."""
    return {
        name
        for path in (ROOT / "src" / "selador").rglob("*.py")
        for name in EMITTED.findall(path.read_text())
    }


def _dashboard(template: dict[str, Any]) -> dict[str, Any]:
    body = props(template, "OperationsDashboard")["DashboardBody"]["Fn::Sub"]
    values = {"AWS::Region": "us-west-2", "AWS::StackName": "selador", "MainLambda": "fn", "HttpApi": "api"}
    resolved = re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], body)
    return json.loads(resolved)


def test_the_dashboard_is_valid_json_and_shows_only_metrics_the_code_emits(template: dict[str, Any]) -> None:
    dashboard = _dashboard(template)
    titles = [w["properties"]["title"] for w in dashboard["widgets"]]
    assert len(titles) == 6
    expressions = json.dumps(dashboard)
    named = {a or b for a, b in SELADOR_METRIC.findall(expressions)}
    assert {"QueriesStarted", "QueriesFinished", "Errors", "TimeToFirstDelta", "ThrottledPosts"} <= named
    assert named <= _emitted_metrics(), f"dashboard names metrics nobody emits: {named - _emitted_metrics()}"


def test_alarms_notify_the_topic_only_when_one_is_given(template: dict[str, Any]) -> None:
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    assert set(alarms) == {
        "FunctionErrorsAlarm",
        "FunctionThrottlesAlarm",
        "HttpApi5xxAlarm",
        "ThrottledPostsAlarm",
        "AsyncFailuresAlarm",
        "FailedJobsDeadLetterAlarm",
    }
    for name, alarm in alarms.items():
        actions = alarm["Properties"]["AlarmActions"]
        with_topic = resolve_value(template, {"a": actions}, {"AlarmTopicArn": TOPIC})
        without = resolve_value(template, {"a": actions}, {"AlarmTopicArn": ""})
        assert with_topic == {"a": [TOPIC]} and without == {}, name
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching", name
    query = alarms["ThrottledPostsAlarm"]["Properties"]["Metrics"][0]["Expression"]
    assert {a or b for a, b in SELADOR_METRIC.findall(query)} <= _emitted_metrics()


TOPIC = "arn:aws:sns:us-west-2:123456789012:selador-alarms"
