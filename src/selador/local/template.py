"""Read the SAM template offline: the function's configuration, its routes, the stage.

The local gateway and ``selador invoke`` take their configuration from ``template.yaml`` so they
cannot drift from what is deployed. CloudFormation intrinsics are resolved where that is possible
without an AWS account (:mod:`selador.local.cfn`); anything that needs a deployed resource (a table
name, an API id, ``Fn::GetAtt``) is reported as unresolved instead of guessed.

Only PyYAML is needed (the ``local`` extra); the module is never imported on Lambda.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selador.local.cfn import (
    NO_VALUE,
    PSEUDO_PARAMETERS,
    Resolver,
    TemplateError,
    Unresolved,
    load_yaml,
    parameter_values,
    resolve_value,
    scalar,
)

__all__ = [
    "DEFAULT_IDENTITY_SOURCE",
    "PSEUDO_PARAMETERS",
    "FunctionConfig",
    "JwtRouteAuth",
    "TemplateConfig",
    "TemplateError",
    "load_template",
    "load_yaml",
    "resolve_value",
]

_SERVERLESS_FUNCTION = "AWS::Serverless::Function"
_SERVERLESS_WEBSOCKET_API = "AWS::Serverless::WebSocketApi"
_V2_API = "AWS::ApiGatewayV2::Api"
_V2_INTEGRATION = "AWS::ApiGatewayV2::Integration"
_V2_AUTHORIZER = "AWS::ApiGatewayV2::Authorizer"
_V2_ROUTE = "AWS::ApiGatewayV2::Route"
_V2_STAGE = "AWS::ApiGatewayV2::Stage"


@dataclass(frozen=True)
class FunctionConfig:
    """The Lambda function as the template configures it (``Globals.Function`` merged in).

    Attributes:
        logical_id: The resource's logical id (``MainLambda``).
        handler: ``module.function`` of the handler.
        runtime: Lambda runtime (``python3.13``).
        timeout: Timeout in seconds (Lambda's default, 3, when absent).
        memory_size: Memory in MB (Lambda's default, 128, when absent).
        architectures: ``("arm64",)`` or ``("x86_64",)``.
        environment: Environment variables whose values resolved offline.
        unresolved_environment: Names of the variables left out of ``environment`` because their
            values need deployed resources (a table name, an API id) or an account id.
    """

    logical_id: str
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    architectures: tuple[str, ...]
    environment: dict[str, str]
    unresolved_environment: tuple[str, ...] = ()


DEFAULT_IDENTITY_SOURCE = "$request.header.Authorization"
"""Where a JWT authorizer reads the token when the template does not say."""


@dataclass(frozen=True)
class JwtRouteAuth:
    """The JWT authorizer on one HTTP API route.

    The issuer and audience are not read from the template: they are deployment parameters, and
    the local gateway checks tokens with the handler's own ``AUTH_*`` settings.

    Attributes:
        authorizer: The authorizer's name in the template (``OidcJwt``).
        identity_source: Where the token is read (``$request.header.Authorization``).
        scopes: The route's ``AuthorizationScopes`` (the token needs one of them); empty: none.
    """

    authorizer: str
    identity_source: str = DEFAULT_IDENTITY_SOURCE
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TemplateConfig:
    """What the local tools need from the template.

    Attributes:
        function: The function every route invokes.
        route_selection_expression: The WebSocket API's (``$request.body.action``); empty without one.
        websocket_route_keys: Route keys in template order (``$connect``, ``$disconnect``, ...).
        http_routes: ``(METHOD, path)`` pairs of the HTTP API routes, in template order.
        stage_name: The WebSocket API's stage, resolved (``production``).
        parameters: Every template parameter that has a value (default or override), as strings.
        http_jwt_routes: The HTTP API routes a JWT authorizer protects, with its settings.
        websocket_integration_timeout_ms: ``TimeoutInMillis`` of the WebSocket API's
            integrations (the largest when they differ); ``None`` when the template sets none
            (API Gateway's default is then its maximum, 29 s).
    """

    function: FunctionConfig
    route_selection_expression: str
    websocket_route_keys: tuple[str, ...]
    http_routes: tuple[tuple[str, str], ...]
    stage_name: str
    parameters: dict[str, str] = field(default_factory=dict)
    websocket_integration_timeout_ms: int | None = None
    http_jwt_routes: dict[tuple[str, str], JwtRouteAuth] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ loading


def _merge_globals(global_props: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (resource wins), lists concatenate, scalars are replaced."""
    merged: dict[str, Any] = dict(global_props)
    for key, value in props.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = _merge_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = current + value
        else:
            merged[key] = value
    return merged


def _is_intrinsic(value: Any) -> bool:
    if not (isinstance(value, dict) and len(value) == 1):
        return False
    key = next(iter(value))
    return key in {"Ref", "Condition"} or key.startswith("Fn::")


def _refers_to(value: Any, logical_id: str) -> bool:
    """True when ``value`` is ``!Ref logical_id`` or ``!GetAtt logical_id.X``."""
    if not isinstance(value, dict):
        return False
    if value.get("Ref") == logical_id:
        return True
    get_att = value.get("Fn::GetAtt")
    return isinstance(get_att, list) and bool(get_att) and get_att[0] == logical_id


def _pick_function(resources: Mapping[str, Any], function_id: str | None) -> tuple[str, dict[str, Any]]:
    functions = {
        name: res
        for name, res in resources.items()
        if isinstance(res, dict) and res.get("Type") == _SERVERLESS_FUNCTION
    }
    if function_id is not None:
        if function_id not in functions:
            raise TemplateError(f"no {_SERVERLESS_FUNCTION} named {function_id!r} in the template")
        return function_id, functions[function_id]
    if not functions:
        raise TemplateError(f"the template declares no {_SERVERLESS_FUNCTION}")
    if len(functions) > 1:
        raise TemplateError(f"the template declares several functions ({', '.join(functions)}); name one")
    return next(iter(functions.items()))


def _function_config(
    resolver: Resolver, logical_id: str, resource: Mapping[str, Any], globals_: Mapping[str, Any]
) -> FunctionConfig:
    props = _merge_globals(globals_, resource.get("Properties") or {})

    def required(name: str) -> str:
        if name not in props:
            raise TemplateError(f"{logical_id} has no {name} (needed to run it locally)")
        try:
            return scalar(resolver.resolve(props[name]))
        except Unresolved as exc:
            raise TemplateError(f"{logical_id}.{name} cannot be resolved offline ({exc})") from None

    def number(name: str, default: int) -> int:
        if name not in props:
            return default
        try:
            return int(scalar(resolver.resolve(props[name])))
        except Unresolved as exc:
            raise TemplateError(f"{logical_id}.{name} cannot be resolved offline ({exc})") from None
        except ValueError:
            raise TemplateError(f"{logical_id}.{name} is not a whole number") from None

    architectures: tuple[str, ...] = ("x86_64",)
    if "Architectures" in props:
        try:
            resolved = resolver.resolve(props["Architectures"])
        except Unresolved as exc:
            raise TemplateError(f"{logical_id}.Architectures cannot be resolved offline ({exc})") from None
        architectures = tuple(scalar(a) for a in (resolved if isinstance(resolved, list) else [resolved]))

    environment: dict[str, str] = {}
    unresolved: list[str] = []
    variables = ((props.get("Environment") or {}).get("Variables")) or {}
    if _is_intrinsic(variables):
        raise TemplateError(f"{logical_id}.Environment.Variables must be a mapping, not an intrinsic")
    for name, raw in variables.items():
        try:
            value = resolver.resolve(raw)
        except Unresolved:
            unresolved.append(name)
            continue
        if value is NO_VALUE:
            continue
        environment[name] = scalar(value)

    return FunctionConfig(
        logical_id=logical_id,
        handler=required("Handler"),
        runtime=required("Runtime"),
        timeout=number("Timeout", 3),
        memory_size=number("MemorySize", 128),
        architectures=architectures,
        environment=environment,
        unresolved_environment=tuple(unresolved),
    )


def _maybe(resolver: Resolver, value: Any) -> Any:
    """``value`` resolved, or ``None`` when it needs a deployment (for optional facts like ProtocolType)."""
    try:
        return resolver.resolve(value)
    except Unresolved:
        return None


def _resolved_str(resolver: Resolver, value: Any, what: str) -> str:
    try:
        return scalar(resolver.resolve(value))
    except Unresolved as exc:
        raise TemplateError(f"{what} cannot be resolved offline ({exc})") from None


def _websocket(resolver: Resolver, resources: Mapping[str, Any]) -> tuple[str, tuple[str, ...], str]:
    """The WebSocket API's route selection expression, route keys and stage name."""
    found: list[tuple[str, tuple[str, ...], str]] = []
    for logical_id, res in resources.items():
        if not isinstance(res, dict):
            continue
        props = res.get("Properties") or {}
        if res.get("Type") == _SERVERLESS_WEBSOCKET_API:
            stage = props.get("StageName", "default")  # SAM's own default for WebSocket APIs
            found.append(
                (
                    _resolved_str(resolver, props.get("RouteSelectionExpression", ""), logical_id),
                    tuple(props.get("Routes") or {}),
                    _resolved_str(resolver, stage, f"{logical_id}.StageName"),
                )
            )
        elif res.get("Type") == _V2_API and _maybe(resolver, props.get("ProtocolType")) == "WEBSOCKET":
            keys: list[str] = []
            stages: list[str] = []
            for other_id, other in resources.items():
                if not isinstance(other, dict):
                    continue
                other_props = other.get("Properties") or {}
                if not _refers_to(other_props.get("ApiId"), logical_id):
                    continue
                if other.get("Type") == _V2_ROUTE:
                    keys.append(_resolved_str(resolver, other_props.get("RouteKey"), f"{other_id}.RouteKey"))
                elif other.get("Type") == _V2_STAGE:
                    stages.append(
                        _resolved_str(resolver, other_props.get("StageName"), f"{other_id}.StageName")
                    )
            found.append(
                (
                    _resolved_str(resolver, props.get("RouteSelectionExpression", ""), logical_id),
                    tuple(keys),
                    stages[0] if stages else "",
                )
            )
    if len(found) > 1:
        raise TemplateError("the template declares more than one WebSocket API")
    return found[0] if found else ("", (), "")


WEBSOCKET_TIMEOUT_MS = (50, 29_000)
"""The range API Gateway accepts for a WebSocket integration's ``TimeoutInMillis``."""


def _websocket_integration_timeout(resolver: Resolver, resources: Mapping[str, Any]) -> int | None:
    """``TimeoutInMillis`` of the WebSocket API's integrations (the largest), or ``None``."""
    websocket_apis = {
        logical_id
        for logical_id, res in resources.items()
        if isinstance(res, dict)
        and res.get("Type") == _V2_API
        and _maybe(resolver, (res.get("Properties") or {}).get("ProtocolType")) == "WEBSOCKET"
    }
    timeouts: list[int] = []
    for logical_id, res in resources.items():
        if not isinstance(res, dict) or res.get("Type") != _V2_INTEGRATION:
            continue
        props = res.get("Properties") or {}
        if "TimeoutInMillis" not in props or not any(
            _refers_to(props.get("ApiId"), a) for a in websocket_apis
        ):
            continue
        text = _resolved_str(resolver, props["TimeoutInMillis"], f"{logical_id}.TimeoutInMillis")
        low, high = WEBSOCKET_TIMEOUT_MS
        if not text.isdigit() or not low <= int(text) <= high:
            raise TemplateError(f"{logical_id}.TimeoutInMillis must be {low} to {high}, got {text!r}")
        timeouts.append(int(text))
    return max(timeouts) if timeouts else None


Route = tuple[str, str]
"""``(METHOD, path)`` of an HTTP API route (``("ANY", "$default")`` for the catch-all)."""


def _http_routes(
    resolver: Resolver,
    resources: Mapping[str, Any],
    function_id: str,
    function: Mapping[str, Any],
    http_api_globals: Mapping[str, Any],
) -> tuple[tuple[Route, ...], dict[Route, JwtRouteAuth]]:
    """HTTP API routes and the JWT authorizer of each route that has one.

    The routes are the function's ``HttpApi`` events plus HTTP ``ApiGatewayV2::Route`` resources.
    """
    routes: list[Route] = []
    auth: dict[Route, JwtRouteAuth] = {}
    events = (function.get("Properties") or {}).get("Events") or {}
    for name, event in events.items():
        if not isinstance(event, dict) or event.get("Type") != "HttpApi":
            continue
        props = event.get("Properties") or {}
        where = f"{function_id}.Events.{name}"
        if "Path" not in props and "Method" not in props:
            route: Route = ("ANY", "$default")  # SAM: an HttpApi event without both is the catch-all
        else:
            method = _resolved_str(resolver, props.get("Method", "ANY"), f"{where}.Method")
            route = (method.upper(), _resolved_str(resolver, props.get("Path", "/"), f"{where}.Path"))
        routes.append(route)
        jwt = _sam_jwt_auth(resolver, resources, props, http_api_globals, where)
        if jwt is not None:
            auth[route] = jwt
    http_apis = {
        logical_id
        for logical_id, res in resources.items()
        if isinstance(res, dict)
        and res.get("Type") == _V2_API
        and _maybe(resolver, (res.get("Properties") or {}).get("ProtocolType")) == "HTTP"
    }
    for logical_id, res in resources.items():
        if not isinstance(res, dict) or res.get("Type") != _V2_ROUTE:
            continue
        props = res.get("Properties") or {}
        if any(_refers_to(props.get("ApiId"), api) for api in http_apis):
            key = _resolved_str(resolver, props.get("RouteKey"), f"{logical_id}.RouteKey")
            method, _, path = key.partition(" ")
            route = (method.upper(), path) if path else ("ANY", key)
            routes.append(route)
            jwt = _v2_jwt_auth(resolver, resources, props, logical_id)
            if jwt is not None:
                auth[route] = jwt
    return tuple(routes), auth


def _strings(resolver: Resolver, value: Any, what: str) -> tuple[str, ...]:
    resolved = _maybe(resolver, value)
    if resolved is None:
        raise TemplateError(f"{what} cannot be resolved offline")
    return tuple(scalar(v) for v in (resolved if isinstance(resolved, list) else [resolved]))


def _sam_jwt_auth(
    resolver: Resolver,
    resources: Mapping[str, Any],
    props: Mapping[str, Any],
    http_api_globals: Mapping[str, Any],
    where: str,
) -> JwtRouteAuth | None:
    """The JWT authorizer of a SAM ``HttpApi`` event.

    The event's ``Auth.Authorizer``, else the API's ``DefaultAuthorizer``; ``None`` for ``NONE``,
    no authorizer, or one that is not a JWT authorizer (a Lambda authorizer is not emulated).
    """
    api_id = props.get("ApiId")
    api_name = api_id.get("Ref") if isinstance(api_id, dict) else None
    api = resources.get(api_name) if isinstance(api_name, str) else None
    # An event without ApiId belongs to SAM's implicit API, configured in Globals.HttpApi.
    api_props = (api.get("Properties") or {}) if isinstance(api, dict) else http_api_globals
    api_auth = api_props.get("Auth") or {}
    event_auth = props.get("Auth") or {}
    name = event_auth.get("Authorizer", api_auth.get("DefaultAuthorizer"))
    if name is None or name == "NONE":
        return None
    config = (api_auth.get("Authorizers") or {}).get(name)
    if not isinstance(config, dict):
        raise TemplateError(f"{where}.Auth.Authorizer {name!r} is not one of the API's Authorizers")
    if "JwtConfiguration" not in config:
        return None  # a Lambda authorizer: not emulated
    identity = _strings(resolver, config.get("IdentitySource", DEFAULT_IDENTITY_SOURCE), where)
    scopes = _strings(resolver, event_auth.get("AuthorizationScopes") or [], f"{where}.AuthorizationScopes")
    return JwtRouteAuth(authorizer=name, identity_source=identity[0], scopes=scopes)


def _v2_jwt_auth(
    resolver: Resolver, resources: Mapping[str, Any], props: Mapping[str, Any], logical_id: str
) -> JwtRouteAuth | None:
    """The JWT authorizer of an ``ApiGatewayV2::Route`` with ``AuthorizationType: JWT``."""
    if _maybe(resolver, props.get("AuthorizationType")) != "JWT":
        return None
    authorizer_id = props.get("AuthorizerId")
    name = authorizer_id.get("Ref") if isinstance(authorizer_id, dict) else None
    authorizer = resources.get(name) if isinstance(name, str) else None
    if (
        not isinstance(name, str)
        or not isinstance(authorizer, dict)
        or authorizer.get("Type") != _V2_AUTHORIZER
    ):
        raise TemplateError(f"{logical_id}.AuthorizerId must be a Ref to an {_V2_AUTHORIZER}")
    config = authorizer.get("Properties") or {}
    identity = _strings(resolver, config.get("IdentitySource", [DEFAULT_IDENTITY_SOURCE]), name)
    scopes = _strings(resolver, props.get("AuthorizationScopes") or [], f"{logical_id}.AuthorizationScopes")
    return JwtRouteAuth(authorizer=name, identity_source=identity[0], scopes=scopes)


def load_template(
    path: str | Path = "template.yaml",
    parameter_overrides: Mapping[str, str] | None = None,
    *,
    function_id: str | None = None,
) -> TemplateConfig:
    """Load the SAM template and resolve what can be resolved without a deployment.

    Args:
        path: The SAM template.
        parameter_overrides: Template parameter values that replace the defaults (like
            ``sam deploy --parameter-overrides``); ``AWS::Region`` and the other keys of
            :data:`PSEUDO_PARAMETERS` may be overridden too.
        function_id: The function's logical id; needed only when the template declares several.

    Returns:
        The resolved configuration.

    Raises:
        TemplateError: The file is missing or invalid, declares no (or an ambiguous) function, an
            override names an undeclared parameter or breaks ``AllowedValues``, or a value the
            local tools need (handler, runtime, timeout, route keys) cannot be resolved offline.
    """
    template = load_yaml(path)
    resources = template.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError(f"{path} has no Resources")
    values, parameters = parameter_values(template, parameter_overrides or {})
    resolver = Resolver(template, values)
    function_logical_id, function = _pick_function(resources, function_id)
    globals_ = ((template.get("Globals") or {}).get("Function")) or {}
    selection, route_keys, stage = _websocket(resolver, resources)
    http_api_globals = ((template.get("Globals") or {}).get("HttpApi")) or {}
    http_routes, http_jwt_routes = _http_routes(
        resolver, resources, function_logical_id, function, http_api_globals
    )
    return TemplateConfig(
        function=_function_config(resolver, function_logical_id, function, globals_),
        route_selection_expression=selection,
        websocket_route_keys=route_keys,
        http_routes=http_routes,
        http_jwt_routes=http_jwt_routes,
        stage_name=stage,
        parameters=parameters,
        websocket_integration_timeout_ms=_websocket_integration_timeout(resolver, resources),
    )
