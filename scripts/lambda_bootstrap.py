"""A stand-in for the Lambda Python runtime's bootstrap: import a handler, call it once, report.

Run by ``scripts/invoke.py`` in a *separate* interpreter of the function's runtime, as

    python3.12 -S -P -B scripts/lambda_bootstrap.py app.handler EVENT.json RESULT.json

with ``PYTHONPATH=<built function dir>:<built layer dir>/python`` and a fresh environment: ``-S``
skips site-packages, ``-P`` keeps this script's folder off ``sys.path``, so the handler sees what
Lambda gives it (``/var/task`` and ``/opt/python``) plus the standard library, nothing else.
Standard library only: it must not be the thing that makes an import work.

The result file gets ``{"result": ...}`` or ``{"errorType", "errorMessage", "stackTrace"}`` (the
shape Lambda reports), plus ``sys_path`` and the import and call times.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid

FORBIDDEN_ON_PATH = (".venv", "site-packages", "layers/common")


def isolation_problems(path: list[str]) -> list[str]:
    """Entries of ``sys.path`` that Lambda would not have: anything but PYTHONPATH and the stdlib."""
    allowed = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    stdlib = os.path.realpath(sys.base_prefix)
    problems = []
    for entry in path:
        real = os.path.realpath(entry) if entry else os.getcwd()
        if entry in allowed:
            if any(part in entry for part in FORBIDDEN_ON_PATH):
                problems.append(f"{entry} (development code on PYTHONPATH)")
        elif not real.startswith(stdlib + os.sep) or any(part in real for part in (".venv", "site-packages")):
            problems.append(entry or "'' (the current directory)")
    return problems


class LambdaContext:
    """The attributes of the runtime's context object that handlers and Powertools read."""

    def __init__(self, timeout_s: float) -> None:
        name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function")
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.function_name = name
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{name}"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{name}")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(handler_spec: str, event_path: str, result_path: str) -> int:
    report: dict[str, object] = {"sys_path": list(sys.path)}
    problems = isolation_problems(sys.path)
    if problems:
        report.update(errorType="IsolationError", errorMessage=f"not Lambda's path: {problems}", stackTrace=[])
    else:
        with open(event_path, encoding="utf-8") as stream:
            event = json.load(stream)
        module_name, _, function_name = handler_spec.rpartition(".")
        try:
            started = time.perf_counter()
            module = importlib.import_module(module_name)
            imported = time.perf_counter()
            handler = getattr(module, function_name)
            context = LambdaContext(float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "10")))
            result = handler(event, context)
            report.update(result=result, init_ms=(imported - started) * 1000)
            report["invoke_ms"] = (time.perf_counter() - imported) * 1000
        except Exception as error:  # reported like Lambda does, the caller decides
            report.update(
                errorType=type(error).__name__,
                errorMessage=str(error),
                stackTrace=traceback.format_exception(error),
            )
    with open(result_path, "w", encoding="utf-8") as stream:
        json.dump(report, stream, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
