"""Just enough of a SAM template for the tooling: functions, their code folders and environment.

Reads the source template (``infra/template.yaml``, short tags like ``!Ref``) and the one
``sam build`` writes (``.aws-sam/build/template.yaml``, long forms like ``Ref:``) into the same
shape. The local stack has its own, fuller reader (``local/template.py``); this one stays small
on purpose so that the Makefile's helpers do not depend on the emulator's internals.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCE_TEMPLATE = ROOT / "infra" / "template.yaml"
BUILD_DIR = ROOT / ".aws-sam" / "build"
BUILT_TEMPLATE = BUILD_DIR / "template.yaml"
EVENTS_DIR = ROOT / "events"

FUNCTION = "AWS::Serverless::Function"
LAYER = "AWS::Serverless::LayerVersion"


class _Loader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form tags, turned into their long forms."""


def _intrinsic(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _intrinsic)


def load(path: Path = SOURCE_TEMPLATE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        return yaml.load(stream, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


@dataclass(frozen=True)
class Function:
    logical_id: str
    handler: str  # "app.handler"
    runtime: str
    code_uri: str  # as written: "../functions/api/" in the source, "ApiFunction" when built
    environment: dict[str, Any]  # Globals merged with the function's own, unresolved
    api_events: tuple[tuple[str, str], ...]  # (METHOD, /path/{x}) of every `Type: Api` event
    properties: dict[str, Any]

    def code_dir(self, template_path: Path) -> Path:
        return (template_path.parent / self.code_uri).resolve()

    @property
    def folder(self) -> str:
        """The folder name under functions/ (and under events/) of a *source* template function."""
        return Path(self.code_uri).name


def functions(template: Mapping[str, Any]) -> dict[str, Function]:
    """Every AWS::Serverless::Function, with SAM Globals applied the way SAM applies them."""
    globals_ = template.get("Globals", {}).get("Function", {})
    global_env = globals_.get("Environment", {}).get("Variables", {})
    found: dict[str, Function] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != FUNCTION:
            continue
        props = resource.get("Properties", {})
        env = {**global_env, **props.get("Environment", {}).get("Variables", {})}
        events = tuple(
            (str(event["Properties"]["Method"]).upper(), str(event["Properties"]["Path"]))
            for event in props.get("Events", {}).values()
            if event.get("Type") == "Api"
        )
        found[logical_id] = Function(
            logical_id=logical_id,
            handler=props.get("Handler", globals_.get("Handler", "")),
            runtime=props.get("Runtime", globals_.get("Runtime", "")),
            code_uri=str(props.get("CodeUri", globals_.get("CodeUri", ""))),
            environment=env,
            api_events=events,
            properties=props,
        )
    return found


def layers(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == LAYER
    }


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(p["Default"]) for name, p in template.get("Parameters", {}).items() if "Default" in p}


def resolve(value: Any, refs: Mapping[str, str]) -> str:
    """An environment value: a plain scalar, or ``Ref``/``Fn::Sub`` over ``refs``.

    ``refs`` maps logical ids, parameters and pseudo parameters (``AWS::Region``) to their values;
    anything else is an error rather than a silent empty string.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, Mapping) and len(value) == 1:
        [(key, arg)] = value.items()
        if key == "Ref":
            if arg not in refs:
                raise KeyError(f"cannot resolve Ref {arg!r}: known are {sorted(refs)}")
            return refs[arg]
        if key == "Fn::Sub" and isinstance(arg, str):
            return re.sub(r"\$\{([^}!]+)\}", lambda m: resolve({"Ref": m.group(1)}, refs), arg)
    raise ValueError(f"cannot resolve {value!r} for the local tools")


def source_function_folders() -> dict[str, str]:
    """Logical id -> folder name under functions/ and events/ (e.g. ApiFunction -> api)."""
    return {logical_id: fn.folder for logical_id, fn in functions(load(SOURCE_TEMPLATE)).items()}
