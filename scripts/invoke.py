"""Run one *built* function on one sample event, the way Lambda would, against the local stack.

    make invoke FN=ApiFunction EVENT=events/api/get_openapi.json
    .venv/bin/python -m scripts.invoke ApiFunction events/api/get_openapi.json [--stack .local/stack.json]

What it does, like ``sam local invoke`` but without Docker:

* takes the function's code and layers from ``.aws-sam/build`` (``make build`` made them), and runs
  the handler in a fresh ``python3.12`` (the template's runtime) whose path holds only the function
  folder and each layer's ``python/`` folder (see ``scripts/lambda_bootstrap.py``);
* gives it the environment the built template declares, resolved against a local stack: table names
  from its ``stack.json``, ``AWS_ENDPOINT_URL`` pointing at its embedded AWS, dummy credentials;
* uses the stack that ``make run`` started if its ``.local/stack.json`` answers, else starts a
  throwaway one for this call (demo key = the sample events' key) and stops it afterwards.

Prints the function's logs (stderr) and its result as JSON (stdout); exits 1 if the function raised.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts import samtemplate

ROOT = samtemplate.ROOT
BOOTSTRAP = ROOT / "scripts" / "lambda_bootstrap.py"
FIND_PYTHON = ROOT / "scripts" / "find-python.sh"
DEFAULT_STACK_JSON = ROOT / ".local" / "stack.json"
# The key the sample events in events/ carry (events/authorizer/token_demo_key.json).
SAMPLE_API_KEY = "lk_demo_local_sample_key_000000000"
REGION = "us-east-1"
PSEUDO_PARAMETERS = {
    "AWS::Region": REGION,
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "loyalty-local",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}


@dataclass(frozen=True)
class BuiltFunction:
    function: samtemplate.Function
    code_dir: Path
    layer_dirs: tuple[Path, ...]  # each layer's python/ folder, as Lambda mounts it at /opt/python


@dataclass(frozen=True)
class Invocation:
    result: Any
    error: dict[str, Any] | None  # {"errorType", "errorMessage", "stackTrace"} if the handler raised
    sys_path: list[str]
    logs: str
    init_ms: float | None

    @property
    def ok(self) -> bool:
        return self.error is None


def built_functions(build_dir: Path = samtemplate.BUILD_DIR) -> dict[str, BuiltFunction]:
    template_path = build_dir / "template.yaml"
    if not template_path.is_file():
        raise FileNotFoundError(f"{template_path} does not exist: run `make build` first")
    template = samtemplate.load(template_path)
    layers = samtemplate.layers(template)
    found = {}
    for logical_id, fn in samtemplate.functions(template).items():
        layer_dirs = []
        for layer in fn.properties.get("Layers", template.get("Globals", {}).get("Function", {}).get("Layers", [])):
            layer_id = layer["Ref"] if isinstance(layer, Mapping) else layer
            content = layers[layer_id]["Properties"]["ContentUri"]
            layer_dirs.append((build_dir / content / "python").resolve())
        found[logical_id] = BuiltFunction(fn, fn.code_dir(template_path), tuple(layer_dirs))
    return found


def stack_refs(template: Mapping[str, Any], stack: Mapping[str, Any]) -> dict[str, str]:
    """What ``Ref`` means locally: parameter defaults, pseudo parameters, the stack's resources."""
    refs = {**samtemplate.parameter_defaults(template), **PSEUDO_PARAMETERS}
    # stack.json maps logical ids to what Ref gives: table and bucket names, queue URLs, topic ARNs...
    for section in ("tables", "queues", "topics", "parameters", "secrets", "buckets", "functions"):
        refs.update({str(k): str(v) for k, v in (stack.get(section) or {}).items()})
    # A REST API's Ref is its id (e.g. the API's URL built with Fn::Sub in an environment).
    refs.update(
        {str(k): str(v["id"]) for k, v in (stack.get("apis") or {}).items() if isinstance(v, dict) and "id" in v}
    )
    return refs


def lambda_env(built: BuiltFunction, stack: Mapping[str, Any], template: Mapping[str, Any]) -> dict[str, str]:
    """The environment Lambda would give this function, pointed at the local stack's AWS."""
    fn = built.function
    props = fn.properties
    refs = stack_refs(template, stack)
    declared = {name: samtemplate.resolve(value, refs) for name, value in fn.environment.items()}
    function_globals = template.get("Globals", {}).get("Function", {})
    return {
        # What the Lambda service sets for every function.
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": fn.logical_id,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props.get("MemorySize", function_globals.get("MemorySize", 128))),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(props.get("Timeout", function_globals.get("Timeout", 3))),
        "LAMBDA_TASK_ROOT": str(built.code_dir),
        "_HANDLER": fn.handler,
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        # Local stand-ins: the stack's embedded AWS, dummy credentials, no X-Ray daemon.
        "AWS_ENDPOINT_URL": str(stack["aws_endpoint"]),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts any
        "AWS_SESSION_TOKEN": "testing",
        "POWERTOOLS_TRACE_DISABLED": "true",
        # How the runtime's path is made: function code first, then the layers.
        "PYTHONPATH": os.pathsep.join([str(built.code_dir), *map(str, built.layer_dirs)]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        **declared,
    }


def runtime_python(runtime: str) -> str:
    """The interpreter for ``python3.12``: .venv/py312/bin (made by the Makefile), else find one."""
    version = runtime.removeprefix("python")
    linked = ROOT / ".venv" / "py312" / "bin" / f"python{version}"
    if linked.exists():
        return str(linked)
    found = subprocess.run([str(FIND_PYTHON), version], capture_output=True, text=True, check=False)  # noqa: S603
    if found.returncode != 0:
        raise RuntimeError(found.stderr.strip())
    return found.stdout.strip()


def invoke(
    built: BuiltFunction,
    event: Mapping[str, Any] | Path,
    stack: Mapping[str, Any],
    *,
    template: Mapping[str, Any] | None = None,
    python: str | None = None,
    timeout: float = 60,
) -> Invocation:
    """Run the handler once in a fresh interpreter; the result as Lambda would report it."""
    template = template or samtemplate.load(built.code_dir.parent / "template.yaml")
    env = lambda_env(built, stack, template)
    with tempfile.TemporaryDirectory(prefix="invoke-") as tmp:
        event_path = Path(tmp) / "event.json"
        result_path = Path(tmp) / "result.json"
        if isinstance(event, Path):
            shutil.copyfile(event, event_path)
        else:
            event_path.write_text(json.dumps(event), encoding="utf-8")
        command = [
            python or runtime_python(built.function.runtime),
            "-S",  # no site-packages: only PYTHONPATH (function + layers) and the stdlib
            "-P",  # not the bootstrap's own folder either
            "-B",
            str(BOOTSTRAP),
            built.function.handler,
            str(event_path),
            str(result_path),
        ]
        done = subprocess.run(  # noqa: S603 - our own bootstrap, arguments we built
            command, env=env, cwd=built.code_dir, capture_output=True, text=True, timeout=timeout, check=False
        )
        logs = done.stdout + done.stderr
        if done.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"the bootstrap itself failed (exit {done.returncode}):\n{logs}")
        report = json.loads(result_path.read_text(encoding="utf-8"))
    error = None
    if "errorType" in report:
        error = {k: report[k] for k in ("errorType", "errorMessage", "stackTrace")}
    return Invocation(report.get("result"), error, report["sys_path"], logs, report.get("init_ms"))


# ----------------------------------------------------------------------------- stacks


def stack_answers(stack: Mapping[str, Any]) -> bool:
    try:
        with urllib.request.urlopen(f"{stack['url'].rstrip('/')}/v1/openapi.json", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except (OSError, KeyError, ValueError):
        return False


@contextlib.contextmanager
def fresh_stack(api_key: str = SAMPLE_API_KEY, timeout: float = 60) -> Iterator[dict[str, Any]]:
    """A throwaway local stack (its own state dir, a free port) for as long as the block runs."""
    with tempfile.TemporaryDirectory(prefix="loyalty-stack-") as state_dir:
        stack_json = Path(state_dir) / "stack.json"
        log_path = Path(state_dir) / "stack.log"
        env = {**os.environ, "LOYALTY_DEMO_API_KEY": api_key}
        with log_path.open("w") as log:
            process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                [sys.executable, "-m", "local.stack", "--port", "0", "--state-dir", state_dir],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + timeout
            while not stack_json.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the local stack did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            stack = json.loads(stack_json.read_text())
            while not stack_answers(stack):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the local stack does not answer:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield stack
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def some_stack(stack_json: Path) -> Iterator[dict[str, Any]]:
    if stack_json.is_file():
        stack = json.loads(stack_json.read_text())
        if stack_answers(stack):
            print(f"using the running local stack at {stack['url']} ({stack_json})", file=sys.stderr)
            yield stack
            return
    print("no local stack answers; starting a throwaway one for this call", file=sys.stderr)
    with fresh_stack() as stack:
        yield stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.invoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("function", help="logical id in the template, e.g. ApiFunction")
    parser.add_argument("event", type=Path, help="a sample event, e.g. events/api/get_openapi.json")
    parser.add_argument("--stack", type=Path, default=DEFAULT_STACK_JSON, help="stack.json of a running stack")
    parser.add_argument("--build-dir", type=Path, default=samtemplate.BUILD_DIR)
    args = parser.parse_args(argv)

    functions = built_functions(args.build_dir)
    if args.function not in functions:
        parser.error(f"no function {args.function!r} in the build; there are: {', '.join(sorted(functions))}")
    if not args.event.is_file():
        parser.error(f"no event file {args.event}")
    with some_stack(args.stack) as stack:
        outcome = invoke(functions[args.function], args.event.resolve(), stack)
    sys.stderr.write(outcome.logs)
    print(json.dumps(outcome.result if outcome.ok else outcome.error, indent=2))
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
