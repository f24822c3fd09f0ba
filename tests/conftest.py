"""Fixtures shared by every test folder: the local stack (``python -m local.stack``) as a subprocess.

``local_stack`` is the stack of infra/template.yaml, started once per test session (per xdist
worker), yielding its stack.json as a dict: ``url``, ``aws_endpoint``, ``tables``, ``queues``,
``tenants``... ``start_local_stack(template=..., env=..., args=...)`` starts further stacks (on
free ports) for tests that need another template or settings; all are stopped at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]

# No per-example time limit for property tests: they check rules, not speed (bench/ measures that),
# and a CI machine's or a loaded laptop's pauses must not fail them.
settings.register_profile("loyalty", deadline=None)
settings.load_profile("loyalty")
STARTUP_TIMEOUT_SECONDS = 60

StartLocalStack = Callable[..., dict[str, Any]]


def _console(log_path: Path) -> str:
    try:
        return log_path.read_text(encoding="utf-8", errors="replace")[-20_000:]
    except OSError:
        return "(no output)"


@pytest.fixture(scope="session")
def start_local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartLocalStack]:
    """A factory: ``start_local_stack(template=None, env=None, args=())`` -> stack.json as a dict.

    The dict also has ``console_log`` (the path of the stack's output) and ``state_dir``.
    """
    processes: list[subprocess.Popen[bytes]] = []

    def start(
        template: Path | str | None = None, env: dict[str, str] | None = None, args: tuple[str, ...] | list[str] = ()
    ) -> dict[str, Any]:
        state_dir = tmp_path_factory.mktemp("local-stack")
        command = [sys.executable, "-m", "local.stack", "--port", "0", "--state-dir", str(state_dir)]
        if template is not None:
            command += ["--template", str(template)]
        elif not any(str(arg).startswith("NoticeBurstSeconds=") for arg in args):
            # An accrual notice waits for its burst window in SQS (DelaySeconds), in real time, and
            # every drain (each step of a time travel) waits for delayed messages: tests' stacks
            # send notices at once unless a test asks for a window.
            command += ["--parameter", "NoticeBurstSeconds=0"]
        command += list(args)
        log_path = state_dir / "console.log"
        # Output goes to a file, never a pipe: nobody reads a pipe while tests run, and a full
        # pipe would block the stack.
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log_file, stderr=subprocess.STDOUT
            )
        processes.append(process)
        state_file = state_dir / "stack.json"
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not state_file.exists():
            if process.poll() is not None:
                pytest.fail(f"the local stack exited with {process.returncode}:\n{_console(log_path)}")
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"no stack.json after {STARTUP_TIMEOUT_SECONDS} s:\n{_console(log_path)}")
            time.sleep(0.05)
        state = json.loads(state_file.read_text(encoding="utf-8"))
        return {**state, "console_log": str(log_path), "state_dir": str(state_dir)}

    yield start

    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def local_stack(start_local_stack: StartLocalStack) -> dict[str, Any]:
    """The local stack of infra/template.yaml: its stack.json as a dict."""
    return start_local_stack()
