"""Reading a SAM/CloudFormation template: YAML short tags, parameters, conditions, Globals, intrinsics.

The template is the one source of truth for the local stack, so this module does what CloudFormation
and the SAM transform would do to it, as far as the local stack needs:

* :func:`load_template` parses YAML (or JSON) with CloudFormation's short tags (``!Ref``, ``!Sub``...)
  turned into their long ``Fn::`` forms, so the rest of the code sees one shape.
* :class:`Template` evaluates ``Parameters`` (defaults, overrides, allowed values), ``Conditions``,
  drops resources whose condition is false and merges SAM ``Globals`` into functions, APIs and
  simple tables.
* :class:`Resolver` evaluates intrinsic functions against the values of resources the local stack
  created (``Ref``/``GetAtt`` values are registered as resources come to exist).

Nothing is resolved eagerly: properties are resolved when the stack needs them, so a property the
local stack ignores (IAM policies, alarms...) can never break the start.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account: ARNs moto makes carry it too.
STACK_NAME = "loyalty-local"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"

IMPLICIT_API_ID = "ServerlessRestApi"  # SAM's name for the API of events without a RestApiId.


class TemplateError(Exception):
    """The template cannot be read or evaluated."""


class UnresolvedReferenceError(TemplateError):
    """A ``Ref``/``GetAtt`` names a resource whose value is not known (yet)."""

    def __init__(self, logical_id: str, attribute: str | None = None) -> None:
        self.logical_id = logical_id
        self.attribute = attribute
        what = f"{logical_id}.{attribute}" if attribute else logical_id
        super().__init__(f"reference to {what} cannot be resolved")


class _NoValue:
    """``AWS::NoValue``: removes the property (or list item) that evaluates to it."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


# --------------------------------------------------------------------------- YAML


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form tags."""


def _construct_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # "!GetAtt Res.Attr" splits at the first dot only: attributes may contain dots
        # (e.g. Endpoint.Address).
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


def _construct_timestamp_as_string(loader: _CfnLoader, node: yaml.Node) -> str:
    # CloudFormation keeps "2010-09-09" a string; YAML 1.1 would make it a date.
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _construct_tag)
_CfnLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp_as_string)
# YAML 1.1 reads on/off/yes/no as booleans, which turns an event named "Off" (or a value "No")
# into False. Only true/false are booleans here, as in YAML 1.2 and JSON.
_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CfnLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a template file (YAML with short tags, or JSON) into plain Python values."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc}") from exc
    try:
        data = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - _CfnLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    return data


# --------------------------------------------------------------------------- intrinsics


def is_intrinsic(value: Any) -> bool:
    """A one-key mapping whose key is ``Ref``, ``Condition`` or ``Fn::...``."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    (key,) = value
    return key in ("Ref", "Condition") or key.startswith("Fn::")


_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def sub_variables(text: str) -> Iterator[str]:
    """The ``${...}`` names a ``Fn::Sub`` string uses (``${!Literal}`` excluded)."""
    for match in _SUB_VARIABLE.finditer(text):
        name = match.group(1).strip()
        if not name.startswith("!"):
            yield name


def references(value: Any) -> set[str]:
    """Logical ids (and pseudo parameters) a value refers to, through Ref, GetAtt and Sub."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        if is_intrinsic(node):
            (key, arg) = next(iter(node.items()))
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
                return
            if key == "Fn::GetAtt":
                target = arg[0] if isinstance(arg, list) and arg else str(arg).partition(".")[0]
                if isinstance(target, str):
                    found.add(target)
                return
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] if len(arg) > 1 else {})
                names = set(variables) if isinstance(variables, dict) else set()
                for name in sub_variables(text):
                    if name not in names:
                        found.add(name.split(".", 1)[0])
                walk(variables)
                return
        for item in node.values():
            walk(item)

    walk(value)
    return found


@dataclass
class Resolver:
    """Evaluates intrinsic functions.

    ``Ref`` finds pseudo parameters, then parameters, then ``refs``; ``GetAtt`` finds ``attributes``.
    The stack fills ``refs`` and ``attributes`` as it creates resources. ``fallback(logical_id,
    attribute)`` answers for resources the local stack does not emulate (see ``emulator``).
    """

    parameters: dict[str, Any]
    mappings: dict[str, Any]
    condition_definitions: dict[str, Any]
    refs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    fallback: Callable[[str, str | None], Any] | None = None
    _conditions: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pseudo: dict[str, Any] = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }

    # -- conditions

    def condition(self, name: str, _seen: frozenset[str] = frozenset()) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        if name not in self.condition_definitions:
            raise TemplateError(f"unknown condition {name!r}")
        if name in _seen:
            raise TemplateError(f"condition {name!r} refers to itself")
        value = self._condition_value(self.condition_definitions[name], _seen | {name})
        self._conditions[name] = value
        return value

    def _condition_value(self, node: Any, seen: frozenset[str]) -> bool:
        if isinstance(node, bool):
            return node
        if isinstance(node, str) and node.lower() in ("true", "false"):
            return node.lower() == "true"
        if not is_intrinsic(node):
            raise TemplateError(f"not a condition: {node!r}")
        (key, arg) = next(iter(node.items()))
        if key == "Condition":
            return self.condition(arg, seen)
        if key == "Fn::Equals":
            left, right = (self.resolve(item) for item in arg)
            return _scalar_text(left) == _scalar_text(right)
        if key == "Fn::Not":
            return not self._condition_value(arg[0], seen)
        if key == "Fn::And":
            return all(self._condition_value(item, seen) for item in arg)
        if key == "Fn::Or":
            return any(self._condition_value(item, seen) for item in arg)
        raise TemplateError(f"{key} is not a condition function")

    # -- values

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic function evaluated and ``AWS::NoValue`` removed."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if isinstance(value, dict):
            if is_intrinsic(value):
                (key, arg) = next(iter(value.items()))
                return self._intrinsic(key, arg)
            resolved = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not NO_VALUE}
        return value

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if self.fallback is not None:
            return self.fallback(name, None)
        raise UnresolvedReferenceError(name)

    def get_att(self, logical_id: str, attribute: str) -> Any:
        key = (logical_id, attribute)
        if key in self.attributes:
            return self.attributes[key]
        if self.fallback is not None:
            return self.fallback(logical_id, attribute)
        raise UnresolvedReferenceError(logical_id, attribute)

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self.ref(arg)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::GetAtt":
            if isinstance(arg, str):
                resource, _, attribute = arg.partition(".")
            else:
                resource, attribute = arg[0], self.resolve(arg[1])
            return self.get_att(resource, attribute)
        if key == "Fn::Sub":
            return self._sub(arg)
        if key == "Fn::Join":
            separator, items = arg
            values = self.resolve(items)
            return str(separator).join(_scalar_text(item) for item in values)
        if key == "Fn::Select":
            index, items = self.resolve(arg[0]), self.resolve(arg[1])
            return items[int(index)]
        if key == "Fn::Split":
            separator, text = arg[0], self.resolve(arg[1])
            return str(text).split(separator)
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self._condition_value({key: arg}, frozenset())
        if key == "Fn::FindInMap":
            return self._find_in_map(arg)
        if key == "Fn::GetAZs":
            region = self.resolve(arg) or REGION
            return [f"{region}{suffix}" for suffix in "abc"]
        if key == "Fn::Base64":
            return base64.b64encode(_scalar_text(self.resolve(arg)).encode()).decode()
        if key == "Fn::Length":
            return len(self.resolve(arg))
        if key == "Fn::ToJsonString":
            return json.dumps(self.resolve(arg), separators=(",", ":"))
        if key == "Fn::ImportValue":
            name = self.resolve(arg)
            # Another stack's exports do not exist locally; a placeholder keeps the stack usable.
            log.warning("Fn::ImportValue %s cannot be resolved locally; using a placeholder", name)
            return f"import:{name}"
        raise TemplateError(f"intrinsic function {key} is not supported by the local stack")

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        else:
            text = arg[0]
            variables = self.resolve(arg[1]) if len(arg) > 1 else {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _scalar_text(variables[name])
            if "." in name and not name.startswith("AWS::"):
                resource, _, attribute = name.partition(".")
                return _scalar_text(self.get_att(resource, attribute))
            return _scalar_text(self.ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _find_in_map(self, arg: list[Any]) -> Any:
        map_name, top, second = (self.resolve(item) for item in arg[:3])
        default = arg[3].get("DefaultValue") if len(arg) > 3 and isinstance(arg[3], dict) else NO_VALUE
        try:
            return self.mappings[map_name][top][second]
        except (KeyError, TypeError):
            if default is not NO_VALUE:
                return self.resolve(default)
            raise TemplateError(f"Fn::FindInMap: {map_name}/{top}/{second} not found") from None


def _scalar_text(value: Any) -> str:
    """How CloudFormation turns a scalar into text (``true``, not ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_scalar_text(item) for item in value)
    return str(value)


def as_env_value(value: Any) -> str:
    """Lambda environment values are strings."""
    return _scalar_text(value)


# --------------------------------------------------------------------------- template


# SAM Globals sections and the resource types they apply to.
_GLOBALS_TARGETS = {
    "Function": "AWS::Serverless::Function",
    "Api": "AWS::Serverless::Api",
    "HttpApi": "AWS::Serverless::HttpApi",
    "SimpleTable": "AWS::Serverless::SimpleTable",
    "StateMachine": "AWS::Serverless::StateMachine",
    "LayerVersion": "AWS::Serverless::LayerVersion",
}


def merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals merge: maps merge key by key, lists concatenate (globals first), the resource's
    own scalar wins. An intrinsic function counts as a scalar (it is replaced, never merged)."""
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        if is_intrinsic(global_value) or is_intrinsic(local_value):
            return copy.deepcopy(local_value)
        merged = copy.deepcopy(global_value)
        for key, value in local_value.items():
            merged[key] = merge_globals(global_value[key], value) if key in global_value else copy.deepcopy(value)
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return copy.deepcopy(global_value) + copy.deepcopy(local_value)
    return copy.deepcopy(local_value)


class Template:
    """A parsed template with parameters bound, conditions applied and SAM Globals merged."""

    def __init__(self, path: Path, overrides: Mapping[str, str] | None = None) -> None:
        self.path = path.resolve()
        self.directory = self.path.parent
        self.raw = load_template(self.path)
        self.parameters = self._bind_parameters(overrides or {})
        self.resolver = Resolver(
            parameters=self.parameters,
            mappings=self.raw.get("Mappings") or {},
            condition_definitions=self.raw.get("Conditions") or {},
        )
        self.resources = self._active_resources()

    def _bind_parameters(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        declared: dict[str, Any] = self.raw.get("Parameters") or {}
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"--parameter names no template parameter: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            spec = spec or {}
            if name in overrides:
                raw: Any = overrides[name]
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no Default: pass --parameter {name}=VALUE")
            text = _scalar_text(raw)
            allowed = spec.get("AllowedValues")
            if allowed is not None and text not in [_scalar_text(item) for item in allowed]:
                raise TemplateError(f"parameter {name}={text!r} is not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and name in overrides and not re.fullmatch(pattern, text):
                raise TemplateError(f"parameter {name}={text!r} does not match {pattern}")
            kind = str(spec.get("Type", "String"))
            # CloudFormation hands every parameter to Ref as text; list types become lists.
            if kind == "CommaDelimitedList" or kind.startswith("List<"):
                values[name] = [item.strip() for item in text.split(",")] if text else []
            else:
                values[name] = text
        return values

    def _active_resources(self) -> dict[str, dict[str, Any]]:
        globals_section: dict[str, Any] = self.raw.get("Globals") or {}
        active: dict[str, dict[str, Any]] = {}
        for logical_id, resource in self.raw["Resources"].items():
            if not isinstance(resource, dict) or "Type" not in resource:
                raise TemplateError(f"resource {logical_id} has no Type")
            condition = resource.get("Condition")
            if condition is not None and not self.resolver.condition(condition):
                log.debug("resource %s skipped: condition %s is false", logical_id, condition)
                continue
            resource = copy.deepcopy(resource)
            for section, resource_type in _GLOBALS_TARGETS.items():
                if resource["Type"] == resource_type and section in globals_section:
                    resource["Properties"] = merge_globals(globals_section[section], resource.get("Properties") or {})
            resource.setdefault("Properties", {})
            active[logical_id] = resource
        return active

    def of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        return {key: res for key, res in self.resources.items() if res["Type"] in types}

    def api_globals(self) -> dict[str, Any]:
        return copy.deepcopy((self.raw.get("Globals") or {}).get("Api") or {})

    def creation_order(self, logical_ids: list[str]) -> list[str]:
        """The given resources ordered so that each comes after the resources it refers to
        (a queue after its dead-letter queue). References outside the set are ignored."""
        wanted = set(logical_ids)
        deps = {
            logical_id: (references(self.resources[logical_id].get("Properties")) & wanted) - {logical_id}
            for logical_id in logical_ids
        }
        ordered: list[str] = []
        done: set[str] = set()

        def visit(node: str, stack: tuple[str, ...]) -> None:
            if node in done:
                return
            if node in stack:
                raise TemplateError(f"circular reference: {' -> '.join((*stack, node))}")
            for dep in sorted(deps[node]):
                visit(dep, (*stack, node))
            done.add(node)
            ordered.append(node)

        for logical_id in logical_ids:
            visit(logical_id, ())
        return ordered
