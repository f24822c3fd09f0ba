"""Cold-start proxy: how long each function's module takes to import in a fresh interpreter.

    make bench                                  (builds first, then runs this)
    .venv/bin/python -m bench.coldstart [-n 7] [--build-dir .aws-sam/build]

A Lambda cold start is download + runtime start + the handler module's import ("init"), then the
first call. Only the import is ours to change, and it is what this measures: each figure is the
median of N fresh processes, each timing ``importlib.import_module`` of one module and nothing else
(interpreter start-up excluded). Beside the functions, the same run measures ``import boto3``
(the floor every function pays), ``pynamodb.models`` and ``aws_lambda_powertools.event_handler``,
and reports every figure as a ratio to boto3 measured in the same environment.

Environments, when available:

* ``lambda``: the template's runtime (python3.12) with only the built function folder and layer
  on the path, no bytecode cache: Lambda's /opt and /var/task are read-only, so a layer built by
  ``sam build`` (which ships no .pyc) is compiled from source at every cold start.
* ``lambda+pyc``: the same build copied and precompiled (``compileall``, unchecked-hash): what
  shipping bytecode in the layer would save.
* ``venv``: the dev venv (python3.11, warm bytecode cache, the same pinned versions).

pynamodb is not in the layer; for the Lambda-like runs a copy of the venv's (pure Python) package
is put beside the layer for that one measurement. Then the built sizes, unzipped and zipped.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scripts import invoke, samtemplate

ROOT = samtemplate.ROOT
# "a,b" imports both in one process: what PynamoDB would add to a function that needs boto3 anyway.
LIBRARIES = ("boto3", "pynamodb.models", "boto3,pynamodb.models", "aws_lambda_powertools.event_handler")
PROBE = """
import importlib, importlib.util, sys, time
target, path = sys.argv[1], sys.argv[2]
start = time.perf_counter()
if path:
    spec = importlib.util.spec_from_file_location(target, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[target] = module
    spec.loader.exec_module(module)
else:
    for name in target.split(","):
        importlib.import_module(name)
print(time.perf_counter() - start)
"""
PLACEHOLDER_STACK = {"aws_endpoint": "http://127.0.0.1:9", "tables": {}}


@dataclass
class Target:
    label: str
    module: str
    path: str = ""  # import by file path (venv: functions/<x>/app.py), else by module name
    env: dict[str, str] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)


@dataclass
class Environment:
    name: str
    what: str
    command: list[str]  # interpreter and flags; the probe and its arguments follow
    targets: list[Target]


def label(modules: str) -> str:
    return "import " + " + ".join(modules.split(","))


def function_envs(template: Mapping) -> dict[str, dict[str, str]]:
    """Each function's own environment (every resource a ``Ref`` names, a table, a queue, a secret,
    the API, resolved to a placeholder: imports make no calls)."""
    refs = invoke.stack_refs(template, PLACEHOLDER_STACK)
    refs.update({name: name for name in template["Resources"] if name not in refs})
    envs = {}
    for logical_id, fn in samtemplate.functions(template).items():
        env = {name: samtemplate.resolve(value, refs) for name, value in fn.environment.items()}
        env.update(AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", POWERTOOLS_TRACE_DISABLED="true")
        envs[logical_id] = env
    return envs


def lambda_environment(name: str, what: str, build_dir: Path, python: str, pynamodb_dir: Path) -> Environment:
    functions = invoke.built_functions(build_dir)
    template = samtemplate.load(build_dir / "template.yaml")
    envs = function_envs(template)
    layer_path = sorted({str(d) for built in functions.values() for d in built.layer_dirs})
    base = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "TZ": ":UTC"}
    # pynamodb is not in the layer: a copy sits after it on the path, for the imports that name it.
    targets = [
        Target(label(lib), lib, env={**base, "PYTHONPATH": os.pathsep.join([*layer_path, str(pynamodb_dir)])})
        for lib in LIBRARIES
    ]
    for logical_id, built in sorted(functions.items()):
        pythonpath = os.pathsep.join([str(built.code_dir), *map(str, built.layer_dirs)])
        env = {**base, **envs[logical_id], "PYTHONPATH": pythonpath, "AWS_LAMBDA_FUNCTION_NAME": logical_id}
        targets.append(Target(f"{logical_id}: import app", "app", env=env))
    return Environment(name, what, [python, "-S", "-P", "-B"], targets)


def venv_environment() -> Environment:
    template = samtemplate.load(samtemplate.SOURCE_TEMPLATE)
    envs = function_envs(template)
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    targets = [Target(label(lib), lib, env=base) for lib in LIBRARIES]
    for logical_id, fn in sorted(samtemplate.functions(template).items()):
        app = fn.code_dir(samtemplate.SOURCE_TEMPLATE) / "app.py"
        env = {**base, **envs[logical_id]}
        targets.append(Target(f"{logical_id}: import app", f"_bench_{fn.folder}_app", str(app), env))
    python = ROOT / ".venv" / "bin" / "python"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    what = f"dev venv, python{version}, warm bytecode cache"
    return Environment("venv", what, [str(python if python.exists() else sys.executable), "-P"], targets)


def measure(environment: Environment, runs: int) -> None:
    # Round-robin, so a slow moment of the machine is spread over every target, not one.
    for _ in range(runs):
        for target in environment.targets:
            done = subprocess.run(
                [*environment.command, "-c", PROBE, target.module, target.path],
                env=target.env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"{environment.name}: importing {target.label} failed:\n{done.stderr}")
            target.samples.append(float(done.stdout.strip()) * 1000)


def report(environment: Environment, runs: int) -> None:
    baseline = statistics.median(environment.targets[0].samples)
    print(f"\n{environment.name}: {environment.what}; median of {runs} fresh processes")
    print(f"| {'module':<44} | {'median ms':>9} | {'min ms':>7} | {'max ms':>7} | {'x boto3':>7} |")
    print(f"|{'-' * 46}|{'-' * 10}:|{'-' * 8}:|{'-' * 8}:|{'-' * 8}:|")
    for target in environment.targets:
        median = statistics.median(target.samples)
        print(
            f"| {target.label:<44} | {median:>9.0f} | {min(target.samples):>7.0f} | "
            f"{max(target.samples):>7.0f} | {median / baseline:>7.2f} |"
        )


def sizes(build_dir: Path) -> list[tuple[str, int, int, int]]:
    """(artifact, files, unzipped bytes, zipped bytes) of every folder sam build wrote."""
    rows = []
    for folder in sorted(p for p in build_dir.iterdir() if p.is_dir()):
        files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, path.relative_to(folder))
        rows.append((folder.name, len(files), sum(p.stat().st_size for p in files), buffer.tell()))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=7, help="fresh processes per import (default 7)")
    parser.add_argument("--build-dir", type=Path, default=samtemplate.BUILD_DIR)
    args = parser.parse_args(argv)

    environments = []
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        built = (args.build_dir / "template.yaml").is_file()
        if built:
            if any(args.build_dir.rglob("*.pyc")):
                print(f"note: {args.build_dir} holds .pyc files (the lambda figures are then not cold)")
            python = invoke.runtime_python("python3.12")
            import pynamodb  # the dev venv's copy, pure Python

            pynamodb_dir = Path(tmp) / "pynamodb-beside-layer"
            shutil.copytree(Path(pynamodb.__file__).parent, pynamodb_dir / "pynamodb")
            what = "python3.12, only the built function and layer on the path, no .pyc (as deployed)"
            environments.append(lambda_environment("lambda", what, args.build_dir.resolve(), python, pynamodb_dir))
            compiled = Path(tmp) / "build"
            shutil.copytree(args.build_dir, compiled)
            shutil.copytree(pynamodb_dir, Path(tmp) / "pynamodb-compiled")
            for folder in (compiled, Path(tmp) / "pynamodb-compiled"):
                subprocess.run(
                    [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(folder)],
                    check=True,
                )
            what = "the same build precompiled (compileall --invalidation-mode unchecked-hash)"
            environments.append(
                lambda_environment("lambda+pyc", what, compiled, python, Path(tmp) / "pynamodb-compiled")
            )
        else:
            print(f"no build in {args.build_dir}: run `make build` for the Lambda-like figures and the sizes")
        environments.append(venv_environment())

        for environment in environments:
            measure(environment, args.runs)
            report(environment, args.runs)

    if built:
        print(f"\nbuilt artifacts in {args.build_dir} (zipped with deflate, as sam deploy uploads them)")
        print(f"| {'artifact':<20} | {'files':>6} | {'unzipped bytes':>14} | {'zipped bytes':>12} |")
        print(f"|{'-' * 22}|{'-' * 7}:|{'-' * 15}:|{'-' * 13}:|")
        for name, count, unzipped, zipped in sizes(args.build_dir):
            print(f"| {name:<20} | {count:>6} | {unzipped:>14,} | {zipped:>12,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
