"""What the local stack runs, read from the template: functions, APIs and routes, schedules and
event source mappings. Built once the data resources exist, so every reference resolves."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.template import (
    ACCOUNT_ID,
    IMPLICIT_API_ID,
    REGION,
    Resolver,
    Template,
    TemplateError,
    as_env_value,
    merge_globals,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_MEMORY_MB = 128


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"


def api_id_for(logical_id: str) -> str:
    """API Gateway ids are 10 lowercase characters; derive one from the logical id so methodArns
    (and anything tests derive from them) are the same on every start."""
    return hashlib.sha256(logical_id.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    timeout: float
    memory_mb: int
    environment: dict[str, str]
    reserved_concurrency: int | None = None

    @property
    def arn(self) -> str:
        return function_arn(self.name)


@dataclass(frozen=True)
class GatewayResponseSpec:
    status: int | None
    headers: dict[str, str]
    body: str | None


@dataclass(frozen=True)
class AuthorizerSpec:
    name: str
    kind: str  # TOKEN, REQUEST, or UNSUPPORTED (Cognito, IAM): routes using it answer 500
    function: str | None = None  # logical id
    header: str = "Authorization"
    validation: re.Pattern[str] | None = None
    ttl_seconds: int = 300
    identity_headers: tuple[str, ...] = ()
    identity_query: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiSpec:
    logical_id: str
    api_id: str
    stage: str
    authorizers: dict[str, AuthorizerSpec]
    default_authorizer: str | None
    gateway_responses: dict[str, GatewayResponseSpec]
    binary_media_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteSpec:
    api: str  # logical id of the API
    path: str
    method: str  # upper case, or ANY
    function: str  # logical id
    event: str
    authorizer: str | None  # None: open route


@dataclass(frozen=True)
class ScheduleSpec:
    name: str  # "<Function>.<Event>"
    function: str
    kind: str  # ScheduleV2 or Schedule
    expression: str
    timezone: str | None
    input: str | None
    enabled: bool
    resource_arn: str
    start: str | None = None
    end: str | None = None


@dataclass(frozen=True)
class QueueSourceSpec:
    name: str
    function: str
    queue_arn: str
    queue_url: str
    batch_size: int
    window_seconds: float
    report_failures: bool
    filters: tuple[Any, ...] = ()


@dataclass(frozen=True)
class StreamSourceSpec:
    name: str
    function: str
    stream_arn: str
    starting_position: str
    batch_size: int
    window_seconds: float
    report_failures: bool
    max_retries: int = -1  # -1: until it succeeds, like Lambda's default (records expire after 24 h)
    filters: tuple[Any, ...] = ()


@dataclass
class StackModel:
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    apis: dict[str, ApiSpec] = field(default_factory=dict)
    routes: list[RouteSpec] = field(default_factory=list)
    schedules: list[ScheduleSpec] = field(default_factory=list)
    queue_sources: list[QueueSourceSpec] = field(default_factory=list)
    stream_sources: list[StreamSourceSpec] = field(default_factory=list)


def _truthy(value: Any, default: bool = True) -> bool:
    if value is None:
        return default
    return value is True or (isinstance(value, str) and value.lower() in ("true", "enabled"))


def _filters(props: dict[str, Any]) -> tuple[Any, ...]:
    criteria = props.get("FilterCriteria") or {}
    return tuple(item.get("Pattern") for item in criteria.get("Filters") or [] if item.get("Pattern"))


def _logical_target(value: Any) -> str | None:
    """``!Ref X`` or ``!GetAtt X.Arn`` -> X (the raw, unresolved form)."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            arg = value["Fn::GetAtt"]
            return str(arg[0] if isinstance(arg, list) else str(arg).partition(".")[0])
    return None


class ModelBuilder:
    """Reads functions, APIs and event sources from the template (see :func:`build_model`)."""

    def __init__(self, template: Template, resolver: Resolver, queue_urls: dict[str, str], inline_dir: Path) -> None:
        self.template = template
        self.resolver = resolver
        self.queue_urls = queue_urls  # queue ARN -> URL
        self.inline_dir = inline_dir
        self.model = StackModel()

    def build(self) -> StackModel:
        for logical_id, resource in self.template.of_type("AWS::Serverless::Function").items():
            spec = self._function(logical_id, resource["Properties"])
            if spec is not None:
                self.model.functions[logical_id] = spec
        names = {spec.name: key for key, spec in self.model.functions.items()}
        for logical_id, resource in self.template.of_type("AWS::Serverless::Api").items():
            self.model.apis[logical_id] = self._api(logical_id, resource["Properties"], names)
        for logical_id, resource in self.template.of_type("AWS::Serverless::Function").items():
            if logical_id in self.model.functions:
                for event_name, event in (resource["Properties"].get("Events") or {}).items():
                    try:
                        self._event(logical_id, event_name, event, names)
                    except TemplateError as exc:
                        log.warning("%s.%s is not emulated: %s", logical_id, event_name, exc)
        return self.model

    # -- functions

    def _function(self, logical_id: str, raw: dict[str, Any]) -> FunctionSpec | None:
        resolve = self.resolver.resolve
        if raw.get("PackageType") == "Image" or raw.get("ImageUri"):
            log.warning("%s is a container image function: not emulated", logical_id)
            return None
        handler = resolve(raw.get("Handler"))
        if not handler or "." not in handler:
            log.warning("%s has no Handler (module.function): not emulated", logical_id)
            return None
        if raw.get("InlineCode") is not None:
            code_dir = self.inline_dir / logical_id
            code_dir.mkdir(parents=True, exist_ok=True)
            module = handler.rsplit(".", 1)[0]
            (code_dir / f"{module}.py").write_text(str(resolve(raw["InlineCode"])), encoding="utf-8")
        else:
            code_uri = resolve(raw.get("CodeUri"))
            if not isinstance(code_uri, str):
                log.warning("%s: CodeUri %r is not a local folder: not emulated", logical_id, code_uri)
                return None
            code_dir = (self.template.directory / code_uri).resolve()
        variables = resolve((raw.get("Environment") or {}).get("Variables") or {})
        reserved = raw.get("ReservedConcurrentExecutions")
        return FunctionSpec(
            logical_id=logical_id,
            name=str(resolve(raw.get("FunctionName")) or logical_id),
            code_dir=code_dir,
            handler=handler,
            timeout=float(resolve(raw.get("Timeout", DEFAULT_TIMEOUT_SECONDS))),
            memory_mb=int(resolve(raw.get("MemorySize", DEFAULT_MEMORY_MB))),
            environment={key: as_env_value(value) for key, value in variables.items()},
            reserved_concurrency=int(resolve(reserved)) if reserved is not None else None,
        )

    # -- APIs

    def _api(self, logical_id: str, raw: dict[str, Any], function_names: dict[str, str]) -> ApiSpec:
        resolve = self.resolver.resolve
        auth = resolve(raw.get("Auth") or {})
        authorizers = {
            name: self._authorizer(name, spec, function_names) for name, spec in (auth.get("Authorizers") or {}).items()
        }
        default = auth.get("DefaultAuthorizer")
        if default == "AWS_IAM":
            authorizers["AWS_IAM"] = AuthorizerSpec(name="AWS_IAM", kind="UNSUPPORTED")
        responses = {}
        for kind, spec in (resolve(raw.get("GatewayResponses") or {})).items():
            parameters = spec.get("ResponseParameters") or {}
            templates = spec.get("ResponseTemplates") or {}
            responses[kind] = GatewayResponseSpec(
                status=int(spec["StatusCode"]) if spec.get("StatusCode") is not None else None,
                headers={name: str(value) for name, value in (parameters.get("Headers") or {}).items()},
                body=templates.get("application/json", next(iter(templates.values()), None)),
            )
        if raw.get("DefinitionBody") or raw.get("DefinitionUri"):
            log.warning("%s: routes from an OpenAPI definition are not emulated (only function Api events)", logical_id)
        return ApiSpec(
            logical_id=logical_id,
            api_id=api_id_for(logical_id),
            stage=str(resolve(raw.get("StageName", "Prod"))),
            authorizers=authorizers,
            default_authorizer=default if default and default != "NONE" else None,
            gateway_responses=responses,
            # "~1" is how SAM templates escape the slash of a media type ("image~1png").
            binary_media_types=tuple(
                str(item).replace("~1", "/") for item in resolve(raw.get("BinaryMediaTypes") or [])
            ),
        )

    def _authorizer(self, name: str, spec: dict[str, Any], function_names: dict[str, str]) -> AuthorizerSpec:
        arn = spec.get("FunctionArn")
        if not arn:
            log.warning("authorizer %s (Cognito/IAM) is not emulated: its routes answer 500", name)
            return AuthorizerSpec(name=name, kind="UNSUPPORTED")
        function = function_names.get(str(arn).rsplit(":", 1)[-1])
        if function is None:
            log.warning("authorizer %s: %s is not a function of this template: its routes answer 500", name, arn)
            return AuthorizerSpec(name=name, kind="UNSUPPORTED")
        identity = spec.get("Identity") or {}
        kind = str(spec.get("FunctionPayloadType", "TOKEN")).upper()
        expression = identity.get("ValidationExpression")
        return AuthorizerSpec(
            name=name,
            kind=kind if kind in ("TOKEN", "REQUEST") else "UNSUPPORTED",
            function=function,
            header=str(identity.get("Header", "Authorization")),
            validation=re.compile(expression) if expression else None,
            ttl_seconds=int(identity.get("ReauthorizeEvery", 300)),
            identity_headers=tuple(identity.get("Headers") or ()),
            identity_query=tuple(identity.get("QueryStrings") or ()),
        )

    def _implicit_api(self) -> str:
        if IMPLICIT_API_ID not in self.model.apis:
            raw = merge_globals(self.template.api_globals(), {})
            self.model.apis[IMPLICIT_API_ID] = self._api(
                IMPLICIT_API_ID, raw, {spec.name: key for key, spec in self.model.functions.items()}
            )
            self.resolver.refs[IMPLICIT_API_ID] = self.model.apis[IMPLICIT_API_ID].api_id
        return IMPLICIT_API_ID

    # -- events

    def _event(self, function: str, event_name: str, event: dict[str, Any], names: dict[str, str]) -> None:
        kind = event.get("Type")
        raw = event.get("Properties") or {}
        if kind == "Api":
            self._api_event(function, event_name, raw)
        elif kind in ("Schedule", "ScheduleV2"):
            self._schedule_event(function, event_name, kind, raw)
        elif kind == "SQS":
            self._queue_event(function, event_name, raw)
        elif kind == "DynamoDB":
            self._stream_event(function, event_name, raw)
        else:
            raise TemplateError(f"event type {kind} has no local emulation")

    def _api_event(self, function: str, event_name: str, raw: dict[str, Any]) -> None:
        api = _logical_target(raw.get("RestApiId")) if raw.get("RestApiId") else self._implicit_api()
        if api not in self.model.apis:
            raise TemplateError(f"RestApiId {raw.get('RestApiId')!r} is not an AWS::Serverless::Api of this template")
        auth = self.resolver.resolve(raw.get("Auth") or {})
        authorizer = auth.get("Authorizer", self.model.apis[api].default_authorizer)
        self.model.routes.append(
            RouteSpec(
                api=api,
                path=str(self.resolver.resolve(raw["Path"])),
                method=str(self.resolver.resolve(raw.get("Method", "ANY"))).upper(),
                function=function,
                event=event_name,
                authorizer=None if authorizer in (None, "NONE") else str(authorizer),
            )
        )

    def _schedule_event(self, function: str, event_name: str, kind: str, raw: dict[str, Any]) -> None:
        props = self.resolver.resolve(raw)
        name = props.get("Name") or f"{function}{event_name}"
        if kind == "ScheduleV2":
            expression, enabled = props["ScheduleExpression"], _truthy(props.get("State"), True)
            arn = f"arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/{props.get('GroupName', 'default')}/{name}"
        else:
            expression = props["Schedule"]
            enabled = _truthy(props.get("Enabled"), True) and _truthy(props.get("State"), True)
            arn = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{name}"
        self.model.schedules.append(
            ScheduleSpec(
                name=f"{function}.{event_name}",
                function=function,
                kind=kind,
                expression=str(expression),
                # EventBridge rules always evaluate in UTC; only Scheduler takes a time zone.
                timezone=props.get("ScheduleExpressionTimezone") if kind == "ScheduleV2" else None,
                input=props.get("Input"),
                enabled=enabled,
                resource_arn=arn,
                start=props.get("StartDate"),
                end=props.get("EndDate"),
            )
        )

    def _queue_event(self, function: str, event_name: str, raw: dict[str, Any]) -> None:
        props = self.resolver.resolve(raw)
        arn = str(props["Queue"])
        if arn not in self.queue_urls:
            raise TemplateError(f"queue {arn} is not a queue of this template")
        if not _truthy(props.get("Enabled"), True):
            log.info("%s.%s is disabled (Enabled: false)", function, event_name)
            return
        self.model.queue_sources.append(
            QueueSourceSpec(
                name=f"{function}.{event_name}",
                function=function,
                queue_arn=arn,
                queue_url=self.queue_urls[arn],
                batch_size=int(props.get("BatchSize", 10)),
                window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                filters=_filters(props),
            )
        )

    def _stream_event(self, function: str, event_name: str, raw: dict[str, Any]) -> None:
        props = self.resolver.resolve(raw)
        if not _truthy(props.get("Enabled"), True):
            log.info("%s.%s is disabled (Enabled: false)", function, event_name)
            return
        stream = str(props["Stream"])
        if ":dynamodb:" not in stream or "/stream/" not in stream:
            raise TemplateError(f"{stream} is not the stream of a table of this template")
        self.model.stream_sources.append(
            StreamSourceSpec(
                name=f"{function}.{event_name}",
                function=function,
                stream_arn=stream,
                starting_position=str(props.get("StartingPosition", "LATEST")),
                batch_size=int(props.get("BatchSize", 100)),
                window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                report_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                max_retries=int(props.get("MaximumRetryAttempts", -1)),
                filters=_filters(props),
            )
        )


def register_functions(template: Template, resolver: Resolver) -> None:
    """Functions, layers and APIs have no moto counterpart: give their Ref/GetAtt the values
    API Gateway and Lambda would (a function's name and ARN, an API's id)."""
    for logical_id, resource in template.of_type("AWS::Serverless::Function").items():
        name = resource["Properties"].get("FunctionName")
        name = str(resolver.resolve(name)) if name is not None else logical_id
        resolver.refs[logical_id] = name
        resolver.attributes[(logical_id, "Arn")] = function_arn(name)
    for logical_id in template.of_type("AWS::Serverless::Api"):
        resolver.refs[logical_id] = api_id_for(logical_id)
        resolver.attributes[(logical_id, "RootResourceId")] = api_id_for(f"{logical_id}/")
    resolver.refs.setdefault(IMPLICIT_API_ID, api_id_for(IMPLICIT_API_ID))
    for logical_id in template.of_type("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
        resolver.refs[logical_id] = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{logical_id}:1"


def build_model(template: Template, resolver: Resolver, queue_urls: dict[str, str], inline_dir: Path) -> StackModel:
    return ModelBuilder(template, resolver, queue_urls, inline_dir).build()
