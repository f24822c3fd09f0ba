"""``python -m local.stack``: run the SAM template locally (what ``make run`` starts).

See docs/LOCAL_STACK.md. This module is kept light on purpose: worker processes are started with
``spawn``, which re-imports the main module (this one) in every worker, so the heavy imports
(moto, werkzeug, boto3) happen inside :func:`main` only.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

DEFAULT_TEMPLATE = Path("infra/template.yaml")


def _parameter(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected Name=Value, got {text!r}")
    return name, value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local.stack",
        description="Emulate the SAM template on loopback: moto as AWS, functions in worker processes, "
        "API Gateway, schedules, queues and streams. No Docker, no AWS account.",
    )
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="SAM template (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address of the API (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=_port,
        default=_port(os.environ.get("PORT", "3000")),
        help="port of the API, 0 for a free one (default: $PORT or 3000)",
    )
    parser.add_argument("--aws-port", type=_port, default=0, help="port of the AWS endpoint (default: a free one)")
    parser.add_argument(
        "--parameter",
        type=_parameter,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter (repeatable)",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=Path(".local"), help="where stack.json is written (default: %(default)s)"
    )
    parser.add_argument(
        "--max-workers", type=int, default=8, help="concurrent worker processes per function (default: %(default)s)"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="seconds a drain (and each time-travel step) waits for queues and streams (default: %(default)s)",
    )
    parser.add_argument("--now", metavar="RFC3339", help="start the local clock at this instant (default: real time)")
    parser.add_argument("--no-seed", action="store_true", help="do not seed the demo tenant")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if args.max_workers < 1:
        parser.error("--max-workers must be at least 1")
    return args


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _banner(state: dict[str, Any], template: Path) -> str:
    lines = [
        f"Local stack ready: {state['url']}  (template {template})",
        f"  AWS endpoint:  {state['aws_endpoint']}  (region {state['region']}, credentials testing/testing)",
    ]
    for tenant, info in (state.get("tenants") or {}).items():
        for name, key in (info.get("api_keys") or {}).items():
            lines.append(f"  Demo API key:  tenant {tenant} ({name}): Authorization: Bearer {key}")
    lines.append(f'  Time travel:   curl -X POST {state["url"]}/_local/clock -d \'{{"advance": "P30D"}}\'')
    lines.append(f"  State:         {state['url']}/_local/health, stack.json in the state dir. Ctrl-C stops.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _configure_logging(args.log_level)
    # Heavy imports here, not at the top: see the module docstring.
    from local.clock import ClockError, parse_rfc3339
    from local.emulator import LocalStack, Options
    from local.template import TemplateError

    try:
        start_time = parse_rfc3339(args.now) if args.now else None
    except ClockError as exc:
        print(f"local stack: --now: {exc}", file=sys.stderr)
        return 2
    options = Options(
        template=args.template.resolve(),
        host=args.host,
        port=args.port,
        aws_port=args.aws_port,
        state_dir=args.state_dir.resolve(),
        parameters=dict(args.parameter),
        max_workers=args.max_workers,
        drain_timeout=args.drain_timeout,
        start_time=start_time,
        seed=not args.no_seed,
    )
    stopping = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        logging.getLogger("local.stack").info("%s: stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    stack = LocalStack(options)
    try:
        state = stack.start()
    except (TemplateError, OSError) as exc:
        print(f"local stack: cannot start: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    except BaseException:
        stack.stop()
        raise
    print(_banner(state, args.template), flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
