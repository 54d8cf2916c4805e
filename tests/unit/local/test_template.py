"""selador.local.template: the real template.yaml, and small inline templates for each rule."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from selador.local.template import (
    FunctionConfig,
    JwtRouteAuth,
    TemplateError,
    load_template,
    load_yaml,
    resolve_value,
)

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"


def write(tmp_path: Path, body: str, name: str = "template.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


MINIMAL_FUNCTION = """
    Resources:
      Fn:
        Type: AWS::Serverless::Function
        Properties:
          Handler: app.handler
          Runtime: python3.13
"""


# ------------------------------------------------------------------------------ the real template


def test_real_template_function() -> None:
    config = load_template(TEMPLATE)
    fn = config.function
    assert isinstance(fn, FunctionConfig)
    assert fn.logical_id == "MainLambda"
    assert fn.handler == "selador.handler.lambda_handler"
    assert fn.runtime == "python3.13"
    assert fn.timeout == 900
    assert fn.memory_size == 1024
    assert fn.architectures == ("arm64",)


def test_real_template_environment_resolves_parameters_and_lists_the_rest() -> None:
    fn = load_template(TEMPLATE).function
    assert fn.environment == {
        "LOG_LEVEL": "INFO",
        "POWERTOOLS_SERVICE_NAME": "selador",
        "MODEL_ARN": "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "KNOWLEDGE_BASE_ID": "",
        "RUN_MODE": "async",
        "LIMIT_RUNNING_ANSWERS": "0",
    }
    # A table name and an API id exist only once deployed; so does the JWT issuer (AuthIssuer has no
    # default), which keeps authentication off locally (AUTH_MODE unset means "none").
    assert set(fn.unresolved_environment) == {
        "CONNECTIONS_TABLE",
        "WEBSOCKET_MANAGEMENT_ENDPOINT",
        "AUTH_MODE",
        "AUTH_ISSUER",
        "AUTH_AUDIENCE",
        "AUTH_JWKS_URL",
    }


def test_real_template_routes_and_stage() -> None:
    config = load_template(TEMPLATE)
    assert config.route_selection_expression == "$request.body.action"
    assert config.websocket_route_keys == (
        "$connect",
        "$disconnect",
        "$default",
        "invoke",
        "ping",
        "resume",
        "cancel",
    )
    assert config.http_routes == (
        ("POST", "/invoke"),
        ("POST", "/runs"),
        ("GET", "/runs/{request_id}"),
        ("DELETE", "/runs/{request_id}"),
        ("GET", "/sessions"),
        ("GET", "/sessions/{session_id}"),
        ("DELETE", "/sessions/{session_id}"),
        ("GET", "/health"),
    )
    assert config.stage_name == "production"
    assert config.parameters["StageName"] == "production"
    assert config.parameters["FunctionTimeout"] == "900"
    assert config.websocket_integration_timeout_ms == 29_000


def test_real_template_overrides() -> None:
    config = load_template(
        TEMPLATE,
        {"StageName": "dev", "LogLevel": "DEBUG", "FunctionTimeout": "60", "KnowledgeBaseId": "ABCDEFGHIJ"},
    )
    assert config.stage_name == "dev"
    assert config.function.timeout == 60
    assert config.function.environment["LOG_LEVEL"] == "DEBUG"
    assert config.function.environment["KNOWLEDGE_BASE_ID"] == "ABCDEFGHIJ"
    assert config.parameters["StageName"] == "dev"


def test_override_outside_allowed_values_is_an_error() -> None:
    with pytest.raises(TemplateError, match="LogLevel"):
        load_template(TEMPLATE, {"LogLevel": "LOUD"})


def test_undeclared_override_is_an_error() -> None:
    with pytest.raises(TemplateError, match="Stage"):
        load_template(TEMPLATE, {"Stage": "dev"})


def test_default_path_is_template_yaml_in_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert load_template().function.logical_id == "MainLambda"


# ------------------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="not found"):
        load_template(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="not valid YAML"):
        load_template(write(tmp_path, "Resources: [unclosed\n"))


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="not a CloudFormation template"):
        load_template(write(tmp_path, "- a\n- b\n"))


def test_no_function(tmp_path: Path) -> None:
    body = """
        Resources:
          Table:
            Type: AWS::DynamoDB::Table
    """
    with pytest.raises(TemplateError, match="no AWS::Serverless::Function"):
        load_template(write(tmp_path, body))


def test_no_resources(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no Resources"):
        load_template(write(tmp_path, "Parameters: {}\n"))


def test_several_functions_need_a_choice(tmp_path: Path) -> None:
    body = MINIMAL_FUNCTION + textwrap.indent(
        textwrap.dedent("""
        Other:
          Type: AWS::Serverless::Function
          Properties:
            Handler: other.handler
            Runtime: python3.12
        """),
        "      ",
    )
    path = write(tmp_path, body)
    with pytest.raises(TemplateError, match="several functions"):
        load_template(path)
    assert load_template(path, function_id="Other").function.handler == "other.handler"
    with pytest.raises(TemplateError, match="Missing"):
        load_template(path, function_id="Missing")


def test_missing_handler(tmp_path: Path) -> None:
    body = """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Runtime: python3.13
    """
    with pytest.raises(TemplateError, match="no Handler"):
        load_template(write(tmp_path, body))


def test_handler_that_needs_a_deployment(tmp_path: Path) -> None:
    body = """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Handler: !GetAtt Other.Name
              Runtime: python3.13
          Other:
            Type: AWS::SNS::Topic
    """
    with pytest.raises(TemplateError, match=r"Fn\.Handler cannot be resolved offline"):
        load_template(write(tmp_path, body))


def test_ref_to_unknown_name(tmp_path: Path) -> None:
    body = """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Handler: app.handler
              Runtime: !Ref Nowhere
    """
    with pytest.raises(TemplateError, match="Nowhere"):
        load_template(write(tmp_path, body))


# ------------------------------------------------------------------------------- YAML loading


def test_short_tags_become_long_form(tmp_path: Path) -> None:
    body = """
        AWSTemplateFormatVersion: "2010-09-09"
        Version: 2010-09-09
        A: !Ref Param
        B: !GetAtt Res.Attr.Nested
        C: !Sub "x-${Param}"
        D: !Join [",", [a, b]]
        E: !If [Cond, 1, 2]
        F: !Condition Cond
        G: !GetAtt [Res, Arn]
        H: !Base64 {"Fn::Sub": "x"}
    """
    data = load_yaml(write(tmp_path, body))
    assert data["Version"] == "2010-09-09"  # not a date
    assert data["A"] == {"Ref": "Param"}
    assert data["B"] == {"Fn::GetAtt": ["Res", "Attr.Nested"]}
    assert data["C"] == {"Fn::Sub": "x-${Param}"}
    assert data["D"] == {"Fn::Join": [",", ["a", "b"]]}
    assert data["E"] == {"Fn::If": ["Cond", 1, 2]}
    assert data["F"] == {"Condition": "Cond"}
    assert data["G"] == {"Fn::GetAtt": ["Res", "Arn"]}
    assert data["H"] == {"Fn::Base64": {"Fn::Sub": "x"}}


def test_loader_does_not_touch_pyyaml_safe_loader() -> None:
    import yaml

    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load("a: !Ref B")


# ------------------------------------------------------------------------------ intrinsics


INTRINSICS = """
    Parameters:
      Stage:
        Type: String
        Default: prod
      Names:
        Type: CommaDelimitedList
        Default: "a,b,c"
      Flag:
        Type: String
        Default: "yes"
      NoDefault:
        Type: String
    Mappings:
      Sizes:
        prod:
          Memory: 2048
    Conditions:
      IsProd: !Equals [!Ref Stage, prod]
      IsFlag: !Equals [!Ref Flag, "yes"]
      Both: !And [!Condition IsProd, !Condition IsFlag]
      NotProd: !Not [!Condition IsProd]
      Either: !Or [!Condition NotProd, !Equals [!Select [0, !Split [":", "arn:x"]], arn]]
    Globals:
      Function:
        Runtime: python3.12
        Timeout: 30
        Environment:
          Variables:
            FROM_GLOBALS: g
            OVERRIDDEN: global
    Resources:
      Table:
        Type: AWS::DynamoDB::Table
      Fn:
        Type: AWS::Serverless::Function
        Properties:
          Handler: app.handler
          Runtime: python3.13
          MemorySize: !FindInMap [Sizes, !Ref Stage, Memory]
          Environment:
            Variables:
              OVERRIDDEN: resource
              SUB: !Sub "${Stage}-${AWS::Region}-${AWS::URLSuffix}"
              SUB_MAP: !Sub ["${X}/${Stage}", {X: !Select [1, !Ref Names]}]
              ESCAPED: !Sub "${!Literal}-${Stage}"
              JOINED: !Join ["+", !Ref Names]
              SPLIT: !Select [2, !Split ["/", "a/b/c"]]
              IF_TRUE: !If [Both, enabled, disabled]
              IF_FALSE: !If [NotProd, enabled, disabled]
              EITHER: !If [Either, enabled, disabled]
              NOVALUE: !If [NotProd, x, !Ref AWS::NoValue]
              B64: !Base64 hi
              BOOL: true
              NUMBER: 7
              TABLE: !Ref Table
              ARN: !GetAtt Table.Arn
              SUB_GETATT: !Sub "${Table.Arn}"
              ACCOUNT: !Sub "${AWS::AccountId}"
              MISSING_PARAM: !Ref NoDefault
"""


def test_intrinsics_resolve(tmp_path: Path) -> None:
    fn = load_template(write(tmp_path, INTRINSICS)).function
    env = fn.environment
    assert env["SUB"] == "prod-us-west-2-amazonaws.com"
    assert env["SUB_MAP"] == "b/prod"
    assert env["ESCAPED"] == "${Literal}-prod"
    assert env["JOINED"] == "a+b+c"
    assert env["SPLIT"] == "c"
    assert env["IF_TRUE"] == "enabled"
    assert env["IF_FALSE"] == "disabled"
    assert env["EITHER"] == "enabled"
    assert "NOVALUE" not in env
    assert env["B64"] == "aGk="
    assert env["BOOL"] == "true"
    assert env["NUMBER"] == "7"
    assert fn.memory_size == 2048


def test_unresolvable_environment_is_listed_not_guessed(tmp_path: Path) -> None:
    fn = load_template(write(tmp_path, INTRINSICS)).function
    assert set(fn.unresolved_environment) == {"TABLE", "ARN", "SUB_GETATT", "ACCOUNT", "MISSING_PARAM"}
    assert not set(fn.unresolved_environment) & set(fn.environment)


def test_pseudo_parameters_can_be_overridden(tmp_path: Path) -> None:
    fn = load_template(
        write(tmp_path, INTRINSICS), {"AWS::Region": "eu-west-1", "AWS::AccountId": "111122223333"}
    ).function
    assert fn.environment["SUB"] == "prod-eu-west-1-amazonaws.com"
    assert fn.environment["ACCOUNT"] == "111122223333"


def test_globals_merge(tmp_path: Path) -> None:
    fn = load_template(write(tmp_path, INTRINSICS)).function
    assert fn.runtime == "python3.13"  # the resource wins
    assert fn.timeout == 30  # from Globals
    assert fn.environment["FROM_GLOBALS"] == "g"  # maps merge
    assert fn.environment["OVERRIDDEN"] == "resource"


def test_conditions_change_with_parameters(tmp_path: Path) -> None:
    body = INTRINSICS.replace("          MemorySize: !FindInMap [Sizes, !Ref Stage, Memory]\n", "")
    fn = load_template(write(tmp_path, body), {"Stage": "dev"}).function
    assert fn.environment["IF_TRUE"] == "disabled"
    assert fn.environment["IF_FALSE"] == "enabled"
    assert fn.environment["NOVALUE"] == "x"


def test_lambda_defaults(tmp_path: Path) -> None:
    fn = load_template(write(tmp_path, MINIMAL_FUNCTION)).function
    assert (fn.timeout, fn.memory_size, fn.architectures) == (3, 128, ("x86_64",))
    assert fn.environment == {}
    assert fn.unresolved_environment == ()


def test_template_without_apis(tmp_path: Path) -> None:
    config = load_template(write(tmp_path, MINIMAL_FUNCTION))
    assert config.websocket_route_keys == ()
    assert config.route_selection_expression == ""
    assert config.stage_name == ""
    assert config.http_routes == ()


def test_resolve_value_evaluates_fragments() -> None:
    template = load_yaml(TEMPLATE)
    assert resolve_value(template, {"Fn::If": ["HasKnowledgeBase", "yes", "no"]}) == "no"
    assert (
        resolve_value(template, {"Fn::If": ["HasKnowledgeBase", "yes", "no"]}, {"KnowledgeBaseId": "X"})
        == "yes"
    )
    assert resolve_value(template, {"Ref": "AWS::NoValue"}) is None
    with pytest.raises(TemplateError, match="cannot be resolved offline"):
        resolve_value(template, {"Fn::GetAtt": ["MainLambda", "Arn"]})


# ---------------------------------------------------------------------------------- APIs


def test_serverless_websocket_api(tmp_path: Path) -> None:
    body = (
        MINIMAL_FUNCTION
        + """
      Ws:
        Type: AWS::Serverless::WebSocketApi
        Properties:
          RouteSelectionExpression: $request.body.type
          Routes:
            $connect:
              FunctionArn: !GetAtt Fn.Arn
            chat:
              FunctionArn: !GetAtt Fn.Arn
    """
    )
    config = load_template(write(tmp_path, body))
    assert config.route_selection_expression == "$request.body.type"
    assert config.websocket_route_keys == ("$connect", "chat")
    assert config.stage_name == "default"  # SAM's default stage name for WebSocket APIs


def test_apigatewayv2_resources(tmp_path: Path) -> None:
    body = (
        MINIMAL_FUNCTION
        + """
      Ws:
        Type: AWS::ApiGatewayV2::Api
        Properties:
          ProtocolType: WEBSOCKET
          RouteSelectionExpression: $request.body.action
      WsStage:
        Type: AWS::ApiGatewayV2::Stage
        Properties:
          ApiId: !Ref Ws
          StageName: live
      R1:
        Type: AWS::ApiGatewayV2::Route
        Properties:
          ApiId: !Ref Ws
          RouteKey: $default
      Http:
        Type: AWS::ApiGatewayV2::Api
        Properties:
          ProtocolType: HTTP
      R2:
        Type: AWS::ApiGatewayV2::Route
        Properties:
          ApiId: !Ref Http
          RouteKey: PUT /items/{id}
      R3:
        Type: AWS::ApiGatewayV2::Route
        Properties:
          ApiId: !Ref Http
          RouteKey: $default
    """
    )
    config = load_template(write(tmp_path, body))
    assert config.websocket_route_keys == ("$default",)
    assert config.stage_name == "live"
    assert config.http_routes == (("PUT", "/items/{id}"), ("ANY", "$default"))
    assert config.websocket_integration_timeout_ms is None  # no integration: API Gateway's 29 s


@pytest.mark.parametrize(
    ("timeouts", "expected"),
    [(["5000"], 5000), (["5000", "12000"], 12000), (["!Ref WsTimeout"], 7000)],
)
def test_websocket_integration_timeout(tmp_path: Path, timeouts: list[str], expected: int) -> None:
    integrations = "".join(
        f"""
      Int{i}:
        Type: AWS::ApiGatewayV2::Integration
        Properties:
          ApiId: !Ref Ws
          IntegrationType: AWS_PROXY
          TimeoutInMillis: {value}"""
        for i, value in enumerate(timeouts)
    )
    body = (
        "\n    Parameters:\n      WsTimeout:\n        Type: Number\n        Default: 7000"
        + MINIMAL_FUNCTION
        + """
      Ws:
        Type: AWS::ApiGatewayV2::Api
        Properties:
          ProtocolType: WEBSOCKET
      HttpInt:
        Type: AWS::ApiGatewayV2::Integration
        Properties:
          ApiId: !Ref Http
          TimeoutInMillis: 30000
      Http:
        Type: AWS::ApiGatewayV2::Api
        Properties:
          ProtocolType: HTTP"""
        + integrations
        + "\n"
    )
    assert load_template(write(tmp_path, body)).websocket_integration_timeout_ms == expected


def test_websocket_integration_timeout_out_of_range_is_an_error(tmp_path: Path) -> None:
    body = (
        MINIMAL_FUNCTION
        + """
      Ws:
        Type: AWS::ApiGatewayV2::Api
        Properties:
          ProtocolType: WEBSOCKET
      Int:
        Type: AWS::ApiGatewayV2::Integration
        Properties:
          ApiId: !Ref Ws
          TimeoutInMillis: 30000
    """
    )
    with pytest.raises(TemplateError, match="TimeoutInMillis must be 50 to 29000"):
        load_template(write(tmp_path, body))


def test_two_websocket_apis_are_ambiguous(tmp_path: Path) -> None:
    body = (
        MINIMAL_FUNCTION
        + """
      A:
        Type: AWS::ApiGatewayV2::Api
        Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
      B:
        Type: AWS::ApiGatewayV2::Api
        Properties: {ProtocolType: WEBSOCKET, RouteSelectionExpression: $request.body.action}
    """
    )
    with pytest.raises(TemplateError, match="more than one WebSocket API"):
        load_template(write(tmp_path, body))


def test_httpapi_events(tmp_path: Path) -> None:
    body = """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Handler: app.handler
              Runtime: python3.13
              Events:
                A:
                  Type: HttpApi
                  Properties: {Method: get, Path: /a}
                CatchAll:
                  Type: HttpApi
                Queue:
                  Type: SQS
                  Properties: {Queue: arn:aws:sqs:us-west-2:123456789012:q}
    """
    assert load_template(write(tmp_path, body)).http_routes == (("GET", "/a"), ("ANY", "$default"))


def test_real_template_jwt_authorizer_protects_all_but_health() -> None:
    routes = load_template(TEMPLATE).http_jwt_routes
    assert set(routes) == {
        ("POST", "/invoke"),
        ("POST", "/runs"),
        ("GET", "/runs/{request_id}"),
        ("DELETE", "/runs/{request_id}"),
        ("GET", "/sessions"),
        ("GET", "/sessions/{session_id}"),
        ("DELETE", "/sessions/{session_id}"),
    }
    assert set(routes.values()) == {JwtRouteAuth("OidcJwt", "$request.header.Authorization", ())}


def test_sam_jwt_authorizers_default_none_scopes_and_lambda(tmp_path: Path) -> None:
    body = """
        Resources:
          Api:
            Type: AWS::Serverless::HttpApi
            Properties:
              Auth:
                DefaultAuthorizer: Jwt
                Authorizers:
                  Jwt:
                    IdentitySource: $request.header.X-Token
                    JwtConfiguration: {issuer: !Ref Issuer, audience: [a]}
                  Custom:
                    FunctionArn: arn:aws:lambda:us-west-2:123456789012:function:auth
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Handler: app.handler
              Runtime: python3.13
              Events:
                Defaulted:
                  Type: HttpApi
                  Properties: {ApiId: !Ref Api, Method: GET, Path: /a}
                Open:
                  Type: HttpApi
                  Properties: {ApiId: !Ref Api, Method: GET, Path: /b, Auth: {Authorizer: NONE}}
                Scoped:
                  Type: HttpApi
                  Properties:
                    ApiId: !Ref Api
                    Method: POST
                    Path: /c
                    Auth: {Authorizer: Jwt, AuthorizationScopes: [s/read, s/write]}
                ByLambda:
                  Type: HttpApi
                  Properties: {ApiId: !Ref Api, Method: GET, Path: /d, Auth: {Authorizer: Custom}}
        Parameters:
          Issuer: {Type: String}
    """
    routes = load_template(write(tmp_path, body)).http_jwt_routes
    assert routes == {
        ("GET", "/a"): JwtRouteAuth("Jwt", "$request.header.X-Token"),
        ("POST", "/c"): JwtRouteAuth("Jwt", "$request.header.X-Token", ("s/read", "s/write")),
    }


def test_unknown_sam_authorizer_is_an_error(tmp_path: Path) -> None:
    body = """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Handler: app.handler
              Runtime: python3.13
              Events:
                A:
                  Type: HttpApi
                  Properties: {Method: GET, Path: /a, Auth: {Authorizer: Nope}}
    """
    with pytest.raises(TemplateError, match="'Nope' is not one of the API's Authorizers"):
        load_template(write(tmp_path, body))


def test_apigatewayv2_jwt_route(tmp_path: Path) -> None:
    body = (
        MINIMAL_FUNCTION
        + """
      Http:
        Type: AWS::ApiGatewayV2::Api
        Properties:
          ProtocolType: HTTP
      Auth:
        Type: AWS::ApiGatewayV2::Authorizer
        Properties:
          ApiId: !Ref Http
          AuthorizerType: JWT
          IdentitySource: [$request.header.Authorization]
      Secured:
        Type: AWS::ApiGatewayV2::Route
        Properties:
          ApiId: !Ref Http
          RouteKey: GET /items
          AuthorizationType: JWT
          AuthorizerId: !Ref Auth
          AuthorizationScopes: [items/read]
      Open:
        Type: AWS::ApiGatewayV2::Route
        Properties:
          ApiId: !Ref Http
          RouteKey: GET /open
    """
    )
    config = load_template(write(tmp_path, body))
    assert config.http_routes == (("GET", "/items"), ("GET", "/open"))
    assert config.http_jwt_routes == {("GET", "/items"): JwtRouteAuth("Auth", scopes=("items/read",))}
