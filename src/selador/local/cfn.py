"""CloudFormation templates read offline: YAML with short-form tags, and intrinsics resolved.

Parameters (defaults or overrides), pseudo parameters with local defaults, conditions, mappings
and ``Fn::Sub``/``Join``/``Select``/``Split``/``If`` are evaluated; anything that needs a
deployed resource (a table name, an API id, ``Fn::GetAtt``) raises :class:`Unresolved` instead of
being guessed. :mod:`selador.local.template` builds the local tools' configuration on top.

Only PyYAML is needed (the ``local`` extra); the module is never imported on Lambda.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")

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


class TemplateError(Exception):
    """The template is missing, unreadable, or lacks what the local tools need."""


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


class Unresolved(Exception):
    """A value needs something only a deployment knows."""


class NoValue:
    """``AWS::NoValue``: the property (or list item) is removed."""


NO_VALUE = NoValue()


class Resolver:
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
        """Resolve every intrinsic inside ``value``; raises ``Unresolved`` when one cannot be."""
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                    return self._intrinsic(key, arg)
            out = {}
            for key, item in value.items():
                resolved = self.resolve(item)
                if resolved is not NO_VALUE:
                    out[key] = resolved
            return out
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
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
            return NO_VALUE
        if name in self._values:
            return self._values[name]
        if name.startswith("AWS::") or name in self._resources:
            raise Unresolved(f"Ref {name}")
        if name in self._declared:
            raise Unresolved(f"Ref {name} (parameter without a default or override)")
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
                return scalar(self.resolve(variables[name]))
            if "." in name:
                raise Unresolved(f"Fn::Sub ${{{name}}}")  # a GetAtt
            return scalar(self._ref(name))

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
            return scalar(self.resolve(left)) == scalar(self.resolve(right))
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
            return str(delimiter).join(scalar(item) for item in resolved)
        if key == "Fn::Select":
            index, items = self._pair(key, arg)
            resolved = self.resolve(items)
            position = int(scalar(self.resolve(index)))
            if not isinstance(resolved, list) or not 0 <= position < len(resolved):
                raise TemplateError(f"Fn::Select index {position} out of range for {resolved!r}")
            return resolved[position]
        if key == "Fn::Split":
            delimiter, source = self._pair(key, arg)
            return scalar(self.resolve(source)).split(str(delimiter))
        if key == "Fn::FindInMap":
            if not (isinstance(arg, list) and len(arg) >= 3):
                raise TemplateError(f"Fn::FindInMap takes [map, key, key], got {arg!r}")
            names = [scalar(self.resolve(item)) for item in arg[:3]]
            try:
                return self._mappings[names[0]][names[1]][names[2]]
            except (KeyError, TypeError):
                raise TemplateError(f"Fn::FindInMap: no {names} in Mappings") from None
        if key == "Fn::Base64":
            return base64.b64encode(scalar(self.resolve(arg)).encode()).decode()
        # Fn::GetAtt, Fn::ImportValue, Fn::GetAZs, Fn::Cidr, ...: only a deployment knows.
        raise Unresolved(key)

    @staticmethod
    def _pair(key: str, arg: Any) -> tuple[Any, Any]:
        if not (isinstance(arg, list) and len(arg) == 2):
            raise TemplateError(f"{key} takes two arguments, got {arg!r}")
        return arg[0], arg[1]


def scalar(value: Any) -> str:
    """CloudFormation's string form of a resolved scalar (booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if value is NO_VALUE:
        raise TemplateError("AWS::NoValue used where a value is required")
    raise TemplateError(f"expected a scalar, got {value!r}")


def parameter_values(
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
        text = scalar(raw)
        allowed = spec.get("AllowedValues")
        if allowed and text not in {scalar(a) for a in allowed}:
            raise TemplateError(f"parameter {name}={text!r} is not one of {allowed}")
        strings[name] = text
        kind = str(spec.get("Type", "String"))
        values[name] = text.split(",") if kind == "CommaDelimitedList" or kind.startswith("List<") else text
    return values, strings


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
        parameter_overrides: As for :func:`selador.local.template.load_template`.

    Returns:
        The resolved fragment.

    Raises:
        TemplateError: The fragment needs a deployed resource (``Ref`` to a resource,
            ``Fn::GetAtt``, an account id that was not passed) or is malformed.
    """
    values, _ = parameter_values(template, parameter_overrides or {})
    try:
        resolved = Resolver(template, values).resolve(value)
    except Unresolved as exc:
        raise TemplateError(f"cannot be resolved offline: {exc}") from None
    return None if resolved is NO_VALUE else resolved
