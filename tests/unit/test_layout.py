"""The repository's shape agrees with itself: template, functions, layer, events, dependencies.

Each test compares two things that are written down in different places and drift apart silently
(a route added to the resolver but not to the template answers 404 behind API Gateway; a package
added to pyproject but not to the layer works in every test and fails in Lambda).
"""

from __future__ import annotations

import ast
import re
import tomllib

import pytest
from packaging.requirements import Requirement

from scripts import samtemplate
from tests.support.functions import load_app

ROOT = samtemplate.ROOT
TEMPLATE = samtemplate.load(samtemplate.SOURCE_TEMPLATE)
FUNCTIONS = samtemplate.functions(TEMPLATE)
GLOBAL_ENV = TEMPLATE.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})


def normalized(lines: list[str]) -> list[str]:
    """Requirement strings in one spelling: canonical names, sorted extras, no spaces or comments."""
    reqs = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
            name = re.sub(r"[-_.]+", "-", req.name).lower()
            reqs.append(f"{name}{extras}{req.specifier}{'; ' + str(req.marker) if req.marker else ''}")
    return sorted(reqs)


def test_layer_requirements_match_pyproject_dependencies() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    layer = (ROOT / "layers" / "common" / "requirements.txt").read_text().splitlines()
    assert normalized(layer) == normalized(pyproject), (
        "layers/common/requirements.txt (what Lambda gets) and pyproject.toml [project] dependencies "
        "(what tests get) must list the same pins"
    )
    assert len(set(normalized(pyproject))) == len(pyproject), "a dependency is listed twice"


def test_normalized_requirements_tell_pins_and_extras_apart() -> None:
    assert normalized(["Foo_Bar[b,a] == 1.0  # why"]) == normalized(["foo-bar[a,b]==1.0"])
    assert normalized(["boto3==1.0"]) != normalized(["boto3==1.1"])
    assert normalized(["pkg[tracer]==1"]) != normalized(["pkg==1"])


def test_template_has_functions() -> None:
    assert FUNCTIONS, "no AWS::Serverless::Function in infra/template.yaml"


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_function_has_code_handler_and_sample_event(logical_id: str) -> None:
    fn = FUNCTIONS[logical_id]
    code_dir = fn.code_dir(samtemplate.SOURCE_TEMPLATE)
    assert code_dir.parent == ROOT / "functions", f"{logical_id}: CodeUri {fn.code_uri} is not under functions/"
    module, _, attribute = fn.handler.rpartition(".")
    assert module == "app", f"{logical_id}: Handler {fn.handler!r}; our functions keep the handler in app.py"
    source = code_dir / "app.py"
    assert source.is_file(), f"{logical_id}: {source.relative_to(ROOT)} is missing"
    defined = {node.name for node in ast.parse(source.read_text()).body if isinstance(node, ast.FunctionDef)}
    assert attribute in defined, f"{logical_id}: app.py defines no function {attribute!r}"
    events = sorted((samtemplate.EVENTS_DIR / fn.folder).glob("*.json"))
    assert events, f"{logical_id}: no sample event in events/{fn.folder}/ (add a real-shaped one)"


def test_runtime_matches_every_layers_build_method() -> None:
    runtimes = {fn.runtime for fn in FUNCTIONS.values()}
    assert len(runtimes) == 1, f"functions use several runtimes: {runtimes}"
    [runtime] = runtimes
    layers = samtemplate.layers(TEMPLATE)
    assert layers, "no AWS::Serverless::LayerVersion in the template"
    for logical_id, layer in layers.items():
        build_method = layer.get("Metadata", {}).get("BuildMethod")
        assert build_method == runtime, f"{logical_id} builds with {build_method!r}, functions run {runtime!r}"
        assert runtime in layer["Properties"].get("CompatibleRuntimes", []), f"{logical_id}: {runtime} not compatible"


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_function_environment_names_its_service(logical_id: str) -> None:
    env = FUNCTIONS[logical_id].environment
    assert env.get("POWERTOOLS_SERVICE_NAME"), f"{logical_id}: POWERTOOLS_SERVICE_NAME missing from its environment"


def template_route(method: str, path: str) -> tuple[str, str]:
    """API Gateway's ``/members/{id}`` in the resolver's spelling ``/members/<id>``."""
    return method.upper(), re.sub(r"\{([^}+]+)\}", r"<\1>", path)


def test_template_route_spelling() -> None:
    assert template_route("get", "/v1/members/{member_id}/entries") == ("GET", "/v1/members/<member_id>/entries")


HTTP_FUNCTIONS = sorted(logical_id for logical_id, fn in FUNCTIONS.items() if fn.api_events)


def test_api_function_exists() -> None:
    assert "ApiFunction" in HTTP_FUNCTIONS


@pytest.mark.parametrize("logical_id", HTTP_FUNCTIONS)
def test_api_routes_in_template_and_resolver_agree(logical_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Loyalty")
    fn = FUNCTIONS[logical_id]
    app = getattr(load_app(fn.code_dir(samtemplate.SOURCE_TEMPLATE) / "app.py"), "app", None)
    assert app is not None, f"{logical_id} has Api events but its app.py has no resolver named `app`"
    served = {(route.method, route.path) for route in app._static_routes + app._dynamic_routes}
    declared = {template_route(method, path) for method, path in fn.api_events}
    assert declared - served == set(), f"in the template but not served by {logical_id}'s resolver (404 in AWS)"
    assert served - declared == set(), f"served by {logical_id}'s resolver but not routed by API Gateway"
