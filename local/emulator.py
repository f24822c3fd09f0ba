"""The local stack assembled: moto, the template's resources, workers, pollers, schedules, the
gateway, seeding and ``stack.json``. ``local.stack`` is the command line around it."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from local.aws import AwsClients, MotoServer
from local.clock import LocalClock, format_rfc3339
from local.control import ControlPlane
from local.gateway import Gateway
from local.model import StackModel, build_model, register_functions
from local.outbox import Capture, Outbox, OutboxPages
from local.pages import ReportsPage
from local.pollers import EventSources
from local.resources import CREATORS, placeholder
from local.scheduler import Scheduler
from local.template import REGION, Template, TemplateError
from local.workers import FunctionRuntime

log = logging.getLogger(__name__)

# Logical ids SAM derives from resources of the template (roles, stages, aliases, the implicit
# APIs): references to them are legitimate although the template does not declare them.
_SAM_IMPLICIT = re.compile(r".*(Role|Stage|Alias\w*|Version\w*|Deployment\w*|Permission\w*)$|Serverless(Http|Rest)Api")


def _isolate_from_aws(endpoint: str) -> None:
    """Whatever runs in the stack process itself (the demo seed) talks to moto, never to an AWS
    account, whatever profile or credentials the developer's shell holds."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )


@dataclass
class Options:
    template: Path
    host: str = "127.0.0.1"
    port: int = 3000
    aws_port: int = 0
    state_dir: Path = Path(".local")
    parameters: dict[str, str] = field(default_factory=dict)
    max_workers: int = 8
    drain_timeout: float = 60.0
    start_time: datetime | None = None
    seed: bool = True


class _QuietHandler(WSGIRequestHandler):
    """The gateway logs requests itself (with the route and the time taken)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class LocalStack:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.clock = LocalClock(options.start_time)
        self.moto: MotoServer | None = None
        self.runtime: FunctionRuntime | None = None
        self.sources: EventSources | None = None
        self.scheduler: Scheduler | None = None
        self.server: BaseWSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self.listing: dict[str, dict[str, Any]] = {
            section: {} for section in ("tables", "queues", "topics", "parameters", "secrets", "buckets")
        }
        self.streams: dict[str, str] = {}
        self.tenants: dict[str, Any] = {}
        self.model = StackModel()
        self.state_file = options.state_dir / "stack.json"

    # ------------------------------------------------------------------ start

    def start(self) -> dict[str, Any]:
        """Build everything; returns what stack.json holds (written last, when all is ready)."""
        template = Template(self.options.template, self.options.parameters)
        self.options.state_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(self.clock.now)
        self.moto = MotoServer(port=self.options.aws_port, wrap=lambda app: Capture(app, self.outbox))
        self.moto.start()
        _isolate_from_aws(self.moto.url)
        clients = AwsClients(self.moto.url)
        self._install_local_clock()

        resolver = template.resolver
        raw_resources = template.raw["Resources"]

        def fallback(logical_id: str, attribute: str | None) -> Any:
            if logical_id in template.resources or _SAM_IMPLICIT.fullmatch(logical_id):
                resource_type = template.resources.get(logical_id, {}).get("Type")
                return placeholder(logical_id, resource_type, attribute)
            if logical_id in raw_resources:
                raise TemplateError(f"{logical_id} is referenced but its Condition is false")
            raise TemplateError(f"reference to {logical_id}, which the template does not define")

        resolver.fallback = fallback
        register_functions(template, resolver)
        creatable = [key for key, resource in template.resources.items() if resource["Type"] in CREATORS]
        queue_urls: dict[str, str] = {}
        for logical_id in template.creation_order(creatable):
            resource = template.resources[logical_id]
            properties = resolver.resolve(resource["Properties"])
            try:
                created = CREATORS[resource["Type"]](clients, logical_id, properties)
            except Exception as exc:
                raise TemplateError(f"cannot create {logical_id} ({resource['Type']}): {exc}") from exc
            resolver.refs[logical_id] = created.ref
            for attribute, value in created.attributes.items():
                resolver.attributes[(logical_id, attribute)] = value
            if created.section:
                self.listing[created.section][logical_id] = created.listed_as
            if resource["Type"] == "AWS::SQS::Queue":
                queue_urls[created.attributes["Arn"]] = created.ref
            if "StreamArn" in created.attributes:
                self.streams[logical_id] = created.attributes["StreamArn"]
        skipped = sorted({resource["Type"] for resource in template.resources.values()} - set(CREATORS))
        log.debug("resource types not emulated (skipped): %s", ", ".join(skipped))

        self.model = build_model(template, resolver, queue_urls, self.options.state_dir / "inline")
        self.runtime = FunctionRuntime(self.model.functions, self.moto.url, self.options.max_workers)
        self.sources = EventSources(
            self.model.queue_sources, self.model.stream_sources, self.runtime, self.clock, clients
        )
        self.scheduler = Scheduler(self.model.schedules, self.runtime, self.clock, drain=self.drain)
        self.sources.extra.append(self.scheduler)

        if self.options.seed:
            self.tenants = self._seed(clients)
        self.sources.start()
        self.scheduler.start()
        self._start_gateway()
        state = self.state()
        self._write_state(state)
        return state

    def _install_local_clock(self) -> None:
        """Code the stack itself runs (the demo seed) reads the local clock too."""
        try:
            from loyalty import clock as loyalty_clock
        except ImportError:
            return
        loyalty_clock.now = self.clock.now  # type: ignore[assignment]

    def _seed(self, clients: AwsClients) -> dict[str, Any]:
        tables = self.listing["tables"]
        if "ConfigTable" not in tables or "LedgerTable" not in tables:
            return {}
        try:
            from loyalty.admin import seed_demo
        except ModuleNotFoundError as exc:
            if exc.name not in ("loyalty", "loyalty.admin"):
                raise
            log.warning("loyalty.admin is not there yet: the demo tenant is not seeded")
            return {}
        except ImportError:
            log.warning("loyalty.admin has no seed_demo yet: the demo tenant is not seeded")
            return {}
        result = seed_demo(
            dynamodb=clients("dynamodb"),
            config_table=tables["ConfigTable"],
            ledger_table=tables["LedgerTable"],
            api_key=os.environ.get("LOYALTY_DEMO_API_KEY"),
        )
        return dict((result or {}).get("tenants") or {})

    def _start_gateway(self) -> None:
        assert self.runtime is not None and self.scheduler is not None
        control = ControlPlane(self.clock, self.scheduler, self.drain, self.options.drain_timeout, self.health)
        gateway = Gateway(self.model, self.runtime, self.clock, control)
        control.add_page("GET", "/_local/reports", ReportsPage(gateway.handle, lambda: self.tenants))
        outbox = OutboxPages(self.outbox, self._senders)
        control.add_page("GET", "/_local/outbox", outbox.page)
        control.add_page("GET", "/_local/outbox.json", outbox.json)
        self.server = make_server(
            self.options.host, self.options.port, gateway, threaded=True, request_handler=_QuietHandler
        )
        self._server_thread = threading.Thread(target=self.server.serve_forever, name="gateway", daemon=True)
        self._server_thread.start()

    def _senders(self) -> dict[str, tuple[str, str]]:
        """Provider message id -> ``(member_id, kind)`` of the send records that delivered them
        (a Scan of the LedgerTable: local only, for the outbox)."""
        table = self.listing["tables"].get("LedgerTable")
        if not table or self.moto is None:
            return {}
        client = AwsClients(self.moto.url)("dynamodb")
        found: dict[str, tuple[str, str]] = {}
        kwargs: dict[str, Any] = {
            "TableName": table,
            "FilterExpression": "begins_with(sk, :send) AND attribute_exists(delivered)",
            "ExpressionAttributeValues": {":send": {"S": "SEND#"}},
            "ProjectionExpression": "member_id, kind, delivered",
        }
        while True:
            page = client.scan(**kwargs)
            for item in page["Items"]:
                for value in item.get("delivered", {}).get("M", {}).values():
                    found[value["S"]] = (item["member_id"]["S"], item["kind"]["S"])
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ------------------------------------------------------------------ running

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://{self.options.host}:{self.server.server_port}"

    def drain(self, timeout: float | None = None) -> bool:
        assert self.sources is not None
        return self.sources.drain(self.options.drain_timeout if timeout is None else timeout)

    def health(self) -> dict[str, Any]:
        return {
            "now": format_rfc3339(self.clock.now()),
            "functions": sorted(self.model.functions),
            "routes": [f"{route.method} {route.path}" for route in self.model.routes],
            "schedules": [spec.name for spec in self.model.schedules],
            "pollers": [spec.name for spec in (*self.model.queue_sources, *self.model.stream_sources)],
        }

    def state(self) -> dict[str, Any]:
        assert self.moto is not None
        return {
            "url": self.url,
            "aws_endpoint": self.moto.url,
            "region": REGION,
            **self.listing,
            "streams": self.streams,
            "functions": {key: spec.name for key, spec in self.model.functions.items()},
            "apis": {key: {"id": api.api_id, "stage": api.stage} for key, api in self.model.apis.items()},
            "tenants": self.tenants,
            "template": str(self.options.template),
            "pid": os.getpid(),
        }

    def _write_state(self, state: dict[str, Any]) -> None:
        # Atomic: a reader polling for the file never sees half of it.
        temporary = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self.state_file)

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Stop everything that was started, in reverse order; safe after a failed start."""
        try:
            self.state_file.unlink(missing_ok=True)
        except OSError:
            log.warning("could not remove %s", self.state_file)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.sources is not None:
            self.sources.stop()
        if self.runtime is not None:
            self.runtime.close()
        if self.moto is not None:
            self.moto.stop()
