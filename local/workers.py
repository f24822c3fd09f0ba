"""Functions run in worker processes, the way Lambda runs them in execution environments.

Each worker is a ``spawn``-ed process that hosts one function: it sets ``os.environ`` to the
function's environment *before* importing the handler (module-level code and cached settings see
what they would see in Lambda), then serves invocations one at a time over a ``Pipe``. stdout and
stderr stay the function's logs: they go straight to the stack's console.

The parent keeps a pool per function: up to ``max_workers`` workers, started on demand and reused
while warm. A handler exception becomes an error result shaped like Lambda's
(``errorMessage``/``errorType``/``stackTrace``); a worker that outlives its timeout is killed and
replaced, as Lambda discards a timed-out environment.

This module is imported by every worker: it must import nothing heavy at the top.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only the parent needs these, and only for type hints
    from multiprocessing.connection import Connection
    from multiprocessing.context import SpawnContext, SpawnProcess

    from local.model import FunctionSpec

log = logging.getLogger(__name__)

RUNTIME = "python3.12"
INIT_TIMEOUT_SECONDS = 30.0  # Lambda allows 10 s of init; spawning a Python adds a few on a busy machine
# Parent variables a worker keeps: what a process needs to run at all. Everything else, AWS
# profiles and credentials above all, stays out, as it would in Lambda.
_INHERITED = ("PATH", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")


@dataclass(frozen=True)
class InvokeResult:
    ok: bool
    payload: Any = None  # the handler's return value after its JSON round trip
    error: dict[str, Any] | None = None  # errorMessage, errorType, stackTrace
    request_id: str = ""
    duration_ms: float = 0.0

    @property
    def error_message(self) -> str:
        return str((self.error or {}).get("errorMessage", ""))


def error_result(request_id: str, message: str, error_type: str, duration_ms: float = 0.0) -> InvokeResult:
    return InvokeResult(
        ok=False,
        error={"errorMessage": message, "errorType": error_type},
        request_id=request_id,
        duration_ms=duration_ms,
    )


def worker_environment(spec: FunctionSpec, aws_endpoint: str, log_stream: str) -> dict[str, str]:
    """The environment a worker runs with: the template's variables, then Lambda's own."""
    env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
    env.update(spec.environment)
    env.update(
        {
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{RUNTIME}",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
            "TZ": "UTC",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": aws_endpoint,
            # No shared config or credentials files: nothing can reach a real account.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("POWERTOOLS_DEV", None)  # production log format, as in Lambda
    return env


# =========================================================================== worker process side


class LambdaContext:
    """The context object of the Python runtime (awslambdaric), same attributes and types:
    ``memory_limit_in_mb`` is a string there too."""

    def __init__(self, config: dict[str, Any], request_id: str, deadline: float) -> None:
        self.function_name: str = config["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn: str = config["function_arn"]
        self.memory_limit_in_mb = str(config["memory_mb"])
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name: str = config["log_stream"]
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = deadline  # time.monotonic() value

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _TaskRootFinder(importlib.abc.MetaPathFinder):
    """Lambda puts the function's folder (LAMBDA_TASK_ROOT) first on the import path, so a handler
    can import modules that sit next to it. Without editing ``sys.path``, this finder answers for
    top-level modules in that folder, just before the standard path finder asks ``sys.path``."""

    def __init__(self, root: str) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if path is not None or "." in fullname:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [self.root])


def _load_handler(config: dict[str, Any]) -> Any:
    code_dir = Path(config["code_dir"])
    module_path, _, function_name = config["handler"].rpartition(".")
    relative = module_path if "/" in module_path else module_path.replace(".", "/")
    candidates = [code_dir / f"{relative}.py", code_dir / relative / "__init__.py"]
    source = next((candidate for candidate in candidates if candidate.is_file()), None)
    if source is None:
        raise ImportError(f"Unable to import module '{module_path}': No module named '{module_path}' in {code_dir}")
    finders = sys.meta_path
    position = next((i for i, finder in enumerate(finders) if finder is importlib.machinery.PathFinder), len(finders))
    finders.insert(position, _TaskRootFinder(str(code_dir)))
    # A unique module name per function: two functions whose handlers are both ``app.py`` must
    # never find each other's module in sys.modules.
    unique = "_lambda_" + re.sub(r"\W", "_", f"{config['logical_id']}__{module_path}")
    spec = importlib.util.spec_from_file_location(unique, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    spec.loader.exec_module(module)
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise AttributeError(f"Handler '{function_name}' missing on module '{module_path}'")
    return handler


def _set_clock(moment: datetime) -> None:
    """Make ``loyalty.clock.now()`` return ``moment`` plus the real time elapsed from here on."""
    try:
        clock = importlib.import_module("loyalty.clock")
    except ImportError:  # a function that does not use the loyalty package
        return
    real_start = time.monotonic()

    def now() -> datetime:
        return moment + timedelta(seconds=time.monotonic() - real_start)

    clock.now = now  # type: ignore[attr-defined]


def _error_payload(exc: BaseException, request_id: str) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _report(exc: BaseException, request_id: str | None = None) -> None:
    # What the Lambda runtime writes to the function's log for an unhandled exception.
    prefix = f"[ERROR] {request_id} " if request_id else "[ERROR] "
    print(f"{prefix}{type(exc).__name__}: {exc}", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.flush()


def _json_default(value: Any) -> Any:
    # The Python runtime marshals Decimal (what boto3's resource layer returns) as a number.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def worker_main(conn: Connection, config: dict[str, Any]) -> None:
    """Entry point of a worker process (spawned: this is a fresh interpreter)."""
    # Ctrl-C reaches the whole process group; the stack stops its workers itself, and a handler
    # interrupted half-way would only print a confusing traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(config["environment"])
    if hasattr(time, "tzset"):
        time.tzset()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    _set_clock(datetime.fromisoformat(config["now"]))  # module-level code sees the stack's time too
    try:
        handler = _load_handler(config)
    except BaseException as exc:  # an init error is reported to the caller, like Lambda's
        _report(exc)
        error = _error_payload(exc, "")
        if isinstance(exc, ImportError | SyntaxError):
            error["errorType"] = "Runtime.ImportModuleError"
            error["errorMessage"] = f"Unable to import module '{config['handler']}': {exc}"
        conn.send(("init_error", error))
        return
    conn.send(("ready", None))
    while True:
        try:
            kind, message = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):  # the stack is gone or stopping
            return
        if kind == "stop":
            return
        conn.send(("result", _invoke(handler, config, message)))


def _invoke(handler: Any, config: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    request_id = message["request_id"]
    _set_clock(datetime.fromisoformat(message["now"]))
    context = LambdaContext(config, request_id, time.monotonic() + config["timeout"])
    try:
        result = handler(json.loads(message["event"]), context)
    except Exception as exc:
        _report(exc, request_id)
        return {"ok": False, "error": _error_payload(exc, request_id)}
    try:
        return {"ok": True, "payload": json.dumps(result, default=_json_default)}
    except (TypeError, ValueError) as exc:
        error = {
            "errorMessage": f"Unable to marshal response: {exc}",
            "errorType": "Runtime.MarshalError",
            "requestId": request_id,
        }
        print(f"[ERROR] {request_id} Runtime.MarshalError: {exc}", file=sys.stderr)
        return {"ok": False, "error": error}


# =========================================================================== parent side


class Worker:
    """One warm execution environment: a process and our end of its pipe."""

    def __init__(self, context: SpawnContext, spec: FunctionSpec, aws_endpoint: str, now: datetime) -> None:
        self.spec = spec
        stamp = datetime.now(UTC).strftime("%Y/%m/%d")
        config = {
            "logical_id": spec.logical_id,
            "function_name": spec.name,
            "function_arn": spec.arn,
            "code_dir": str(spec.code_dir),
            "handler": spec.handler,
            "memory_mb": spec.memory_mb,
            "timeout": spec.timeout,
            "log_stream": f"{stamp}/[$LATEST]{uuid.uuid4().hex}",
            "now": now.isoformat(),
        }
        config["environment"] = worker_environment(spec, aws_endpoint, config["log_stream"])
        self.conn, child_conn = context.Pipe()
        self.process: SpawnProcess = context.Process(
            target=worker_main, args=(child_conn, config), name=f"lambda:{spec.logical_id}", daemon=True
        )
        self.process.start()
        child_conn.close()  # only the child holds it now: its death shows as EOF here

    def wait_ready(self) -> dict[str, Any] | None:
        """None when the handler imported; else the init error."""
        if not self.conn.poll(INIT_TIMEOUT_SECONDS):
            self.kill()
            return {
                "errorMessage": f"init did not finish in {INIT_TIMEOUT_SECONDS:.0f} s",
                "errorType": "Runtime.InitError",
            }
        try:
            kind, error = self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            return {"errorMessage": "Runtime exited during init", "errorType": "Runtime.ExitError"}
        if kind != "ready":
            self.kill()
            return error  # type: ignore[no-any-return]
        return None

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def invoke(self, event_json: str, now: datetime, request_id: str) -> InvokeResult:
        started = time.monotonic()
        try:
            self.conn.send(("invoke", {"event": event_json, "now": now.isoformat(), "request_id": request_id}))
            if not self.conn.poll(self.spec.timeout):
                # Lambda's rule: a timed-out environment is thrown away.
                self.kill()
                return error_result(
                    request_id,
                    f"Task timed out after {self.spec.timeout:.2f} seconds",
                    "Sandbox.Timedout",
                    (time.monotonic() - started) * 1000,
                )
            _kind, answer = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.kill()
            return error_result(request_id, "Runtime exited without providing a reason", "Runtime.ExitError")
        duration = (time.monotonic() - started) * 1000
        if answer["ok"]:
            return InvokeResult(
                ok=True, payload=json.loads(answer["payload"]), request_id=request_id, duration_ms=duration
            )
        return InvokeResult(ok=False, error=answer["error"], request_id=request_id, duration_ms=duration)

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(("stop", None))
        self.process.join(timeout=1)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        with contextlib.suppress(OSError):
            self.conn.close()


_STOPPING = {"errorMessage": "the local stack is stopping", "errorType": "ServiceException"}


class FunctionPool:
    """Up to ``max_workers`` warm workers for one function. Callers beyond that wait for a worker
    (Lambda would throttle instead; locally, waiting keeps tests deterministic)."""

    def __init__(self, context: SpawnContext, spec: FunctionSpec, aws_endpoint: str, max_workers: int) -> None:
        self.spec = spec
        self._context = context
        self._aws_endpoint = aws_endpoint
        self._max = max(1, max_workers)
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()
        self._starting = 0
        self._closed = False
        self._cond = threading.Condition()

    def invoke(self, event: Any, now: datetime, request_id: str | None = None) -> InvokeResult:
        request_id = request_id or str(uuid.uuid4())
        event_json = json.dumps(event)
        worker, init_error = self._acquire(now)
        if worker is None:
            return InvokeResult(ok=False, error={**(init_error or {}), "requestId": request_id}, request_id=request_id)
        try:
            return worker.invoke(event_json, now, request_id)
        finally:
            self._release(worker)

    def _acquire(self, now: datetime) -> tuple[Worker | None, dict[str, Any] | None]:
        with self._cond:
            while True:
                if self._closed:
                    return None, _STOPPING
                if self._idle:
                    return self._idle.pop(), None  # the most recently used: the warmest
                if len(self._all) + self._starting < self._max:
                    self._starting += 1
                    break
                self._cond.wait()
        worker: Worker | None = None
        try:
            worker = Worker(self._context, self.spec, self._aws_endpoint, now)
            error = worker.wait_ready()
        except Exception as exc:
            log.exception("cannot start a worker for %s", self.spec.logical_id)
            error = {"errorMessage": str(exc), "errorType": "Runtime.InitError"}
        with self._cond:
            self._starting -= 1
            if error is None and worker is not None and not self._closed:
                self._all.add(worker)
                return worker, None
            if self._closed:
                error = _STOPPING
            self._cond.notify()
        if worker is not None:
            worker.kill()
        return None, error

    def _release(self, worker: Worker) -> None:
        with self._cond:
            if worker.alive and not self._closed:
                self._idle.append(worker)
            else:
                self._all.discard(worker)
                if worker in self._idle:
                    self._idle.remove(worker)
            self._cond.notify()
        if not worker.alive:
            worker.kill()  # reap it

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.stop()


class FunctionRuntime:
    """All functions of the stack: ``invoke(logical_id, event, now)``."""

    def __init__(self, functions: dict[str, FunctionSpec], aws_endpoint: str, max_workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pools = {
            logical_id: FunctionPool(
                context,
                spec,
                aws_endpoint,
                min(max_workers, spec.reserved_concurrency) if spec.reserved_concurrency else max_workers,
            )
            for logical_id, spec in functions.items()
        }

    def invoke(self, logical_id: str, event: Any, now: datetime, *, source: str = "") -> InvokeResult:
        result = self.pools[logical_id].invoke(event, now)
        via = f" ({source})" if source else ""
        if result.ok:
            log.info("%s %s %.1f ms%s", logical_id, result.request_id, result.duration_ms, via)
        else:
            log.warning(
                "%s %s failed%s: %s: %s",
                logical_id,
                result.request_id,
                via,
                (result.error or {}).get("errorType"),
                result.error_message,
            )
        return result

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
