"""Read the SAM template offline: the function's configuration, its routes, the stage.

The local gateway and ``selador invoke`` take their configuration from ``template.yaml`` so they
cannot drift from what is deployed. CloudFormation intrinsics are resolved where that is possible
without an AWS account (parameters, pseudo parameters with local defaults, conditions, mappings,
``Fn::Sub``/``Join``/``Select``/``Split``/``If``); anything that needs a deployed resource (a table
name, an API id, ``Fn::GetAtt``) is reported as unresolved instead of guessed.

Only PyYAML is needed (the ``local`` extra); the module is never imported on Lambda.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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

#: Pseudo parameters resolvable offline, with the values ``load_template`` assumes. The region is
#: the one samconfig.toml deploys to; override any of them through ``parameter_overrides``
#: (``{"AWS::Region": "eu-west-1"}``). ``AWS::AccountId`` and ``AWS::StackName`` have no default:
#: a made-up account or stack name must not leak into a resolved value, so they resolve only when
#: the caller passes them.
PSEUDO_PARAMETERS: dict[str, str] = {
    "AWS::Region": "us-west-2",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}

_SERVERLESS_FUNCTION = "AWS::Serverless::Function"
_SERVERLESS_WEBSOCKET_API = "AWS::Serverless::WebSocketApi"
_V2_API = "AWS::ApiGatewayV2::Api"
_V2_INTEGRATION = "AWS::ApiGatewayV2::Integration"
_V2_AUTHORIZER = "AWS::ApiGatewayV2::Authorizer"
_V2_ROUTE = "AWS::ApiGatewayV2::Route"
_V2_STAGE = "AWS::ApiGatewayV2::Stage"
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(Exception):
    """The template is missing, unreadable, or lacks what the local tools need."""


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


# --------------------------------------------------------------------------------------- YAML


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form tags (a subclass, so PyYAML's global is untouched)."""


def _construct_short_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    """Turn ``!Ref X`` into ``{"Ref": "X"}``, ``!Sub s`` into ``{"Fn::Sub": s}`` and so on."""
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix in {"Ref", "Condition"}:
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # The short form takes "Resource.Attribute"; the attribute may itself contain dots.
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_short_tag)


def _no_dates(loader: _CfnLoader, node: yaml.Node) -> str:
    # CloudFormation reads 2010-09-09 as a string; YAML 1.1 would make it a date.
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_CfnLoader.add_constructor("tag:yaml.org,2002:timestamp", _no_dates)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML (or JSON) template into plain dicts.

    Short-form tags become their long form (``!GetAtt A.B`` → ``{"Fn::GetAtt": ["A", "B"]}``).

    Args:
        path: The template file.

    Returns:
        The template as a dict.

    Raises:
        TemplateError: The file is missing, is not valid YAML, or is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"template not found: {path}") from None
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc}") from None
    try:
        data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - _CfnLoader is a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise TemplateError(f"{path} is not a CloudFormation template (top level is not a mapping)")
    return data


# ----------------------------------------------------------------------------------- resolver


class _Unresolved(Exception):
    """A value needs something only a deployment knows."""


class _NoValue:
    """``AWS::NoValue``: the property (or list item) is removed."""


_NO_VALUE = _NoValue()


class _Resolver:
    """Evaluates intrinsic functions against parameter values known offline."""

    def __init__(self, template: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        self._values = dict(values)
        self._conditions: Mapping[str, Any] = template.get("Conditions") or {}
        self._mappings: Mapping[str, Any] = template.get("Mappings") or {}
        self._resources: Mapping[str, Any] = template.get("Resources") or {}
        self._declared: Mapping[str, Any] = template.get("Parameters") or {}
        self._condition_cache: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    def resolve(self, value: Any) -> Any:
        """Resolve every intrinsic inside ``value``; raises ``_Unresolved`` when one cannot be."""
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                    return self._intrinsic(key, arg)
            out = {}
            for key, item in value.items():
                resolved = self.resolve(item)
                if resolved is not _NO_VALUE:
                    out[key] = resolved
            return out
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not _NO_VALUE]
        return value

    def condition(self, name: str) -> bool:
        """Evaluate a named condition (cached; cycles are a template error)."""
        if name in self._condition_cache:
            return self._condition_cache[name]
        if name not in self._conditions:
            raise TemplateError(f"unknown condition {name!r}")
        if name in self._evaluating:
            raise TemplateError(f"condition {name!r} refers to itself")
        self._evaluating.add(name)
        try:
            result = self._truth(self._conditions[name])
        finally:
            self._evaluating.discard(name)
        self._condition_cache[name] = result
        return result

    def _truth(self, value: Any) -> bool:
        resolved = self.resolve(value)
        if isinstance(resolved, bool):
            return resolved
        if isinstance(resolved, str) and resolved.lower() in {"true", "false"}:
            return resolved.lower() == "true"
        raise TemplateError(f"condition does not evaluate to a boolean: {value!r}")

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"Ref needs a name, got {name!r}")
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self._values:
            return self._values[name]
        if name.startswith("AWS::") or name in self._resources:
            raise _Unresolved(f"Ref {name}")
        if name in self._declared:
            raise _Unresolved(f"Ref {name} (parameter without a default or override)")
        raise TemplateError(f"Ref to unknown parameter or resource {name!r}")

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict):
            text, variables = arg[0], arg[1]
        else:
            raise TemplateError(f"Fn::Sub takes a string or [string, map], got {arg!r}")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} is an escaped literal
            if name in variables:
                return _scalar(self.resolve(variables[name]))
            if "." in name:
                raise _Unresolved(f"Fn::Sub ${{{name}}}")  # a GetAtt
            return _scalar(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self._ref(arg)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::If":
            if not (isinstance(arg, list) and len(arg) == 3):
                raise TemplateError(f"Fn::If takes [condition, then, else], got {arg!r}")
            # Only the chosen branch is resolved, as CloudFormation does.
            return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
        if key == "Fn::Equals":
            left, right = self._pair(key, arg)
            return _scalar(self.resolve(left)) == _scalar(self.resolve(right))
        if key == "Fn::Not":
            return not self._truth(arg[0] if isinstance(arg, list) else arg)
        if key == "Fn::And":
            return all(self._truth(item) for item in arg)
        if key == "Fn::Or":
            return any(self._truth(item) for item in arg)
        if key == "Fn::Join":
            delimiter, items = self._pair(key, arg)
            resolved = self.resolve(items)
            if not isinstance(resolved, list):
                raise TemplateError(f"Fn::Join needs a list, got {resolved!r}")
            return str(delimiter).join(_scalar(item) for item in resolved)
        if key == "Fn::Select":
            index, items = self._pair(key, arg)
            resolved = self.resolve(items)
            position = int(_scalar(self.resolve(index)))
            if not isinstance(resolved, list) or not 0 <= position < len(resolved):
                raise TemplateError(f"Fn::Select index {position} out of range for {resolved!r}")
            return resolved[position]
        if key == "Fn::Split":
            delimiter, source = self._pair(key, arg)
            return _scalar(self.resolve(source)).split(str(delimiter))
        if key == "Fn::FindInMap":
            if not (isinstance(arg, list) and len(arg) >= 3):
                raise TemplateError(f"Fn::FindInMap takes [map, key, key], got {arg!r}")
            names = [_scalar(self.resolve(item)) for item in arg[:3]]
            try:
                return self._mappings[names[0]][names[1]][names[2]]
            except (KeyError, TypeError):
                raise TemplateError(f"Fn::FindInMap: no {names} in Mappings") from None
        if key == "Fn::Base64":
            return base64.b64encode(_scalar(self.resolve(arg)).encode()).decode()
        # Fn::GetAtt, Fn::ImportValue, Fn::GetAZs, Fn::Cidr, ...: only a deployment knows.
        raise _Unresolved(key)

    @staticmethod
    def _pair(key: str, arg: Any) -> tuple[Any, Any]:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"{key} takes two arguments, got {arg!r}")
        return arg[0], arg[1]


def _scalar(value: Any) -> str:
    """CloudFormation's string form of a resolved scalar (booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if value is _NO_VALUE:
        raise TemplateError("AWS::NoValue used where a value is required")
    raise TemplateError(f"expected a scalar, got {value!r}")


# ------------------------------------------------------------------------------------ loading


def _parameter_values(
    template: Mapping[str, Any], overrides: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Parameter values for Ref (lists for list types) and their string forms for the config."""
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    unknown = sorted(k for k in overrides if k not in declared and not k.startswith("AWS::"))
    if unknown:
        raise TemplateError(f"parameter override(s) not declared in the template: {', '.join(unknown)}")
    values: dict[str, Any] = dict(PSEUDO_PARAMETERS)
    # A pseudo parameter the caller passes explicitly (AWS::AccountId in a test) is used as given.
    values.update({k: v for k, v in overrides.items() if k.startswith("AWS::")})
    strings: dict[str, str] = {}
    for name, spec in declared.items():
        spec = spec or {}
        if name in overrides:
            raw = overrides[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            continue  # Ref to it stays unresolved
        text = _scalar(raw)
        allowed = spec.get("AllowedValues")
        if allowed and text not in {_scalar(a) for a in allowed}:
            raise TemplateError(f"parameter {name}={text!r} is not one of {allowed}")
        strings[name] = text
        kind = str(spec.get("Type", "String"))
        values[name] = text.split(",") if kind == "CommaDelimitedList" or kind.startswith("List<") else text
    return values, strings


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
    resolver: _Resolver, logical_id: str, resource: Mapping[str, Any], globals_: Mapping[str, Any]
) -> FunctionConfig:
    props = _merge_globals(globals_, resource.get("Properties") or {})

    def required(name: str) -> str:
        if name not in props:
            raise TemplateError(f"{logical_id} has no {name} (needed to run it locally)")
        try:
            return _scalar(resolver.resolve(props[name]))
        except _Unresolved as exc:
            raise TemplateError(f"{logical_id}.{name} cannot be resolved offline ({exc})") from None

    def number(name: str, default: int) -> int:
        if name not in props:
            return default
        try:
            return int(_scalar(resolver.resolve(props[name])))
        except _Unresolved as exc:
            raise TemplateError(f"{logical_id}.{name} cannot be resolved offline ({exc})") from None
        except ValueError:
            raise TemplateError(f"{logical_id}.{name} is not a whole number") from None

    architectures: tuple[str, ...] = ("x86_64",)
    if "Architectures" in props:
        try:
            resolved = resolver.resolve(props["Architectures"])
        except _Unresolved as exc:
            raise TemplateError(f"{logical_id}.Architectures cannot be resolved offline ({exc})") from None
        architectures = tuple(_scalar(a) for a in (resolved if isinstance(resolved, list) else [resolved]))

    environment: dict[str, str] = {}
    unresolved: list[str] = []
    variables = ((props.get("Environment") or {}).get("Variables")) or {}
    if _is_intrinsic(variables):
        raise TemplateError(f"{logical_id}.Environment.Variables must be a mapping, not an intrinsic")
    for name, raw in variables.items():
        try:
            value = resolver.resolve(raw)
        except _Unresolved:
            unresolved.append(name)
            continue
        if value is _NO_VALUE:
            continue
        environment[name] = _scalar(value)

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


def _maybe(resolver: _Resolver, value: Any) -> Any:
    """``value`` resolved, or ``None`` when it needs a deployment (for optional facts like ProtocolType)."""
    try:
        return resolver.resolve(value)
    except _Unresolved:
        return None


def _resolved_str(resolver: _Resolver, value: Any, what: str) -> str:
    try:
        return _scalar(resolver.resolve(value))
    except _Unresolved as exc:
        raise TemplateError(f"{what} cannot be resolved offline ({exc})") from None


def _websocket(resolver: _Resolver, resources: Mapping[str, Any]) -> tuple[str, tuple[str, ...], str]:
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


def _websocket_integration_timeout(resolver: _Resolver, resources: Mapping[str, Any]) -> int | None:
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
    resolver: _Resolver,
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


def _strings(resolver: _Resolver, value: Any, what: str) -> tuple[str, ...]:
    resolved = _maybe(resolver, value)
    if resolved is None:
        raise TemplateError(f"{what} cannot be resolved offline")
    return tuple(_scalar(v) for v in (resolved if isinstance(resolved, list) else [resolved]))


def _sam_jwt_auth(
    resolver: _Resolver,
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
    resolver: _Resolver, resources: Mapping[str, Any], props: Mapping[str, Any], logical_id: str
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


def resolve_value(
    template: Mapping[str, Any], value: Any, parameter_overrides: Mapping[str, str] | None = None
) -> Any:
    """Resolve the intrinsics in ``value`` (a fragment of ``template``) as CloudFormation would.

    Conditions, parameters (defaults or overrides), pseudo parameters and mappings are evaluated;
    ``AWS::NoValue`` drops the property or list item. Useful to check a policy's ``Fn::If`` logic
    for a given parameter value without deploying.

    Args:
        template: The whole template (for its Parameters, Conditions and Mappings).
        value: The fragment to resolve.
        parameter_overrides: As for :func:`load_template`.

    Returns:
        The resolved fragment.

    Raises:
        TemplateError: The fragment needs a deployed resource (``Ref`` to a resource,
            ``Fn::GetAtt``, an account id that was not passed) or is malformed.
    """
    values, _ = _parameter_values(template, parameter_overrides or {})
    try:
        resolved = _Resolver(template, values).resolve(value)
    except _Unresolved as exc:
        raise TemplateError(f"cannot be resolved offline: {exc}") from None
    return None if resolved is _NO_VALUE else resolved


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
    values, parameters = _parameter_values(template, parameter_overrides or {})
    resolver = _Resolver(template, values)
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
