"""Message templates: the repository's files per kind and locale, a tenant's overrides, and
rendering in Jinja2's sandbox.

Files live beside this module (``templates/<locale>/<kind>/``: ``subject.txt``, ``email.html``,
``email.txt``, ``sms.txt``; ``templates/<locale>/_layout.html`` frames every e-mail), so the built
layer carries them. A tenant may override any (kind, channel, locale) through the admin API; an
override wins over the file of the same locale. The locale used is the first of the fallback
chain (``kinds.locale_chain``) that has a template.

Rendering is sandboxed (``SandboxedEnvironment``: no ``''.__class__`` tricks), HTML is
autoescaped (text and SMS are not), and an undefined variable is an error (``StrictUndefined``),
never an empty string. ``check`` refuses, when a template is saved, what would fail when sent:
a syntax error (with its line), a variable the kind does not have, a template it may not include,
and anything the sandbox refuses with the kind's sample data.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateSyntaxError, meta, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from loyalty.errors import InvalidRequest
from loyalty.messaging import sms
from loyalty.messaging.kinds import Channel, locale_chain, spec

TEMPLATE_DIR = Path(__file__).parent / "templates"
# The parts of each channel, and the file each is kept in.
PARTS: Mapping[str, tuple[str, ...]] = {"email": ("subject", "html", "text"), "sms": ("text",)}
FILES: Mapping[tuple[str, str], str] = {
    ("email", "subject"): "subject.txt",
    ("email", "html"): "email.html",
    ("email", "text"): "email.txt",
    ("sms", "text"): "sms.txt",
}
LAYOUTS = frozenset({"_layout.html", "_footer.txt"})  # what a template may extend or include, in its locale
_LAYOUT_NAME = re.compile(r"""(["'])(_layout\.html|_footer\.txt)\1""")
MAX_PART_CHARS = {"subject": 200, "html": 50_000, "text": 20_000}
OVERRIDES_TTL_SECONDS = 60.0


@dataclass(frozen=True)
class Rendered:
    kind: str
    channel: Channel
    locale: str  # the locale actually used, after the fallback chain
    subject: str | None
    html: str | None
    text: str  # sms: the message
    encoding: Literal["GSM-7", "UCS-2"] | None  # sms only
    segments: int | None  # sms only


# What rendering may raise on data of the wrong shape (a filter given text for a number, a
# comparison of text with a number) besides Jinja's own errors: all of it is the data's fault.
RENDER_ERRORS = (TemplateError, ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError)


class RenderError(ValueError):
    """A template could not be rendered with the data given (a missing variable, a refused access)."""


# ------------------------------------------------------------------ filters the templates may use

MONTHS = {
    "en": "January February March April May June July August September October November December",
    "ru": "января февраля марта апреля мая июня июля августа сентября октября ноября декабря",
    "uk": "січня лютого березня квітня травня червня липня серпня вересня жовтня листопада грудня",
}


@pass_context
def _date(context: Context, value: Any) -> str:
    """An ISO date as the locale writes it: ``1 March 2026``, ``1 марта 2026``, ``1 березня 2026``."""
    day = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    months = MONTHS.get(str(context.get("locale", "en"))[:2], MONTHS["en"]).split(" ")
    return f"{day.day} {months[day.month - 1]} {day.year}"


def _points(value: Any) -> str:
    """An integer with thin groups: 12 500 (a no-break space, so it never wraps)."""
    return f"{int(value):,}".replace(",", "\u00a0")


def _environment(autoescape: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters["date"] = _date
    env.filters["points"] = _points
    return env


@cache
def environment(autoescape: bool) -> SandboxedEnvironment:
    """The sandbox for HTML (autoescaped) or for text and SMS (not), made once per process."""
    return _environment(autoescape)


def _env_for(part: str) -> SandboxedEnvironment:
    return environment(part == "html")


# ------------------------------------------------------------------ the repository's files


def file_source(kind: str, channel: str, locale: str, part: str) -> str | None:
    """The repository's template for one part, or None if that locale has none."""
    path = TEMPLATE_DIR / locale / kind / FILES[(channel, part)]
    return path.read_text(encoding="utf-8") if path.is_file() else None


def file_parts(kind: str, channel: str, locale: str) -> dict[str, str] | None:
    """Every part of the repository's template for (kind, channel, locale), or None."""
    parts = {part: file_source(kind, channel, locale, part) for part in PARTS[channel]}
    return None if any(source is None for source in parts.values()) else {k: v for k, v in parts.items() if v}


# ------------------------------------------------------------------ a tenant's overrides

OverridesReader = Callable[[str, str], Iterable[Any]]  # (tenant, kind) -> TemplateOverride items


@cache
def _default_reader() -> OverridesReader:
    from loyalty.settings import settings  # read on first use: a pure render needs no environment
    from loyalty.store.templates import TemplateStore

    return TemplateStore(settings().config_table).overrides


class OverridesCache:
    """(tenant, kind) -> {(channel, locale): parts}, kept ``OVERRIDES_TTL_SECONDS`` per process:
    a sender renders thousands of messages with one Query per kind a minute, and a saved
    template applies within that minute (at once in the process that saved it)."""

    def __init__(self, ttl: float = OVERRIDES_TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.reader: OverridesReader | None = None  # tests may set their own
        self._cached: dict[tuple[str, str], tuple[dict[tuple[str, str], dict[str, str]], float]] = {}

    def get(self, tenant_id: str, kind: str) -> dict[tuple[str, str], dict[str, str]]:
        cached = self._cached.get((tenant_id, kind))
        if cached is not None and self.clock() - cached[1] < self.ttl:
            return cached[0]
        from loyalty.store import dynamo

        reader = self.reader or _default_reader()
        found = dynamo.with_retries(lambda: list(reader(tenant_id, kind)))
        overrides = {
            (o.channel, o.locale): {part: getattr(o, part) for part in PARTS[o.channel] if getattr(o, part)}
            for o in found
        }
        self._cached[(tenant_id, kind)] = (overrides, self.clock())
        return overrides

    def forget(self, tenant_id: str, kind: str) -> None:
        self._cached.pop((tenant_id, kind), None)


overrides = OverridesCache()


# ------------------------------------------------------------------ checking and rendering


DERIVED = frozenset({"kind", "category"})  # set by the renderer, usable by every template


def _context(kind: str, locale: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {**data, "locale": locale, "kind": kind, "category": spec(kind).category}


def _render_part(part: str, source: str, context: Mapping[str, Any], locale: str) -> str:
    env = _env_for(part)
    # Layouts are looked up in the template's own locale: ``{% extends "_layout.html" %}``.
    source = _LAYOUT_NAME.sub(lambda m: f'"{locale}/{m.group(2)}"', source)
    return env.from_string(source).render(context)


def _subject(text: str) -> str:
    """A subject is one line: newlines and runs of spaces collapse (no header injection)."""
    return re.sub(r"\s+", " ", text).strip()


def render(
    kind: str,
    channel: Channel,
    locale: str | None,
    data: Mapping[str, Any],
    *,
    tenant_id: str | None = None,
    default_locale: str = "en",
) -> Rendered:
    """Render ``kind`` for ``channel`` in the first locale of the fallback chain that has a
    template (the tenant's override before the repository's file). Unknown kind: KeyError;
    a missing variable or anything the sandbox refuses: RenderError."""
    spec(kind)  # KeyError for an unknown kind
    if channel not in PARTS:
        raise KeyError(f"unknown channel {channel!r}; known: {', '.join(PARTS)}")
    tenant_overrides = overrides.get(tenant_id, kind) if tenant_id else {}
    for candidate in locale_chain(locale, default_locale):
        parts = tenant_overrides.get((channel, candidate)) or file_parts(kind, channel, candidate)
        if parts:
            break
    else:  # pragma: no cover - every kind has English files (a unit test proves it)
        raise KeyError(f"no template for {kind!r} {channel!r} in any of {locale_chain(locale, default_locale)}")
    context = _context(kind, candidate, data)
    try:
        layout = _layout_locale(candidate)
        out = {part: _render_part(part, source, context, layout) for part, source in parts.items()}
    except RENDER_ERRORS as error:
        raise RenderError(f"{kind}/{channel}/{candidate}: {error}") from error
    if channel == "sms":
        text = out["text"].strip()
        return Rendered(kind, channel, candidate, None, None, text, sms.encoding(text), sms.segments(text))
    return Rendered(kind, channel, candidate, _subject(out["subject"]), out["html"], out["text"].strip(), None, None)


def check(kind: str, channel: Channel, locale: str, parts: Mapping[str, str | None]) -> None:
    """Refuse (InvalidRequest, one entry per problem in ``errors``) a template that could fail when
    sent: a missing or too long part, a syntax error (its line), a variable the kind does not
    have, an include of anything but the layout, or a refusal of the sandbox with sample data."""
    kind_spec = spec(kind)
    errors: list[dict[str, Any]] = []
    for part in PARTS[channel]:
        source = parts.get(part)
        if not source or not source.strip():
            errors.append({"field": part, "message": "is required", "type": "missing"})
            continue
        if len(source) > MAX_PART_CHARS[part]:
            errors.append({"field": part, "message": f"may be {MAX_PART_CHARS[part]} characters at most"})
            continue
        env = _env_for(part)
        try:
            ast = env.parse(source)
        except TemplateSyntaxError as error:
            errors.append(
                {
                    "field": part,
                    "message": f"line {error.lineno}: {error.message}",
                    "type": "syntax",
                    "line": error.lineno,
                }
            )
            continue
        unknown = sorted(meta.find_undeclared_variables(ast) - kind_spec.variables - DERIVED)
        if unknown:
            errors.append(
                {
                    "field": part,
                    "message": f"uses unknown variable(s) {', '.join(unknown)}; {kind} has: "
                    f"{', '.join(sorted(kind_spec.variables))}",
                    "type": "unknown-variable",
                    "variables": unknown,
                }
            )
            continue
        referenced = set(meta.find_referenced_templates(ast))
        if referenced - LAYOUTS:
            errors.append(
                {
                    "field": part,
                    "message": f"may only extend or include: {', '.join(sorted(LAYOUTS))}",
                    "type": "include",
                }
            )
            continue
        try:
            _render_part(part, source, _context(kind, locale, kind_spec.sample), _layout_locale(locale))
        except RENDER_ERRORS as error:  # SecurityError and UndefinedError are TemplateErrors
            line = getattr(error, "lineno", None)
            where = f"line {line}: " if line else ""
            errors.append({"field": part, "message": f"{where}{str(error).rstrip('.')}", "type": "render"})
    if errors:
        summary = "; ".join(f"{e['field']} {e['message']}" for e in errors[:5])
        raise InvalidRequest(f"The template cannot be used: {summary}.", errors=errors)


def _layout_locale(locale: str) -> str:
    """The locale whose layout an override in ``locale`` extends (its base language, else English)."""
    return next(c for c in locale_chain(locale) if (TEMPLATE_DIR / c / "_layout.html").is_file())


# ------------------------------------------------------------------ a tenant's overrides, administered

Source = Literal["tenant", "repository"]


@dataclass(frozen=True)
class StoredTemplate:
    """The template in force for exactly (kind, channel, locale): the tenant's or the repository's."""

    kind: str
    channel: Channel
    locale: str
    source: Source
    parts: Mapping[str, str]
    updated_at: str | None = None
    updated_by: Mapping[str, str] | None = None


def _known(kind: str, channel: str) -> None:
    from loyalty.errors import NotFound

    try:
        spec(kind)
    except KeyError as error:
        raise NotFound(f"No message kind {kind!r}. Known: {', '.join(sorted(_kinds()))}.", kind=kind) from error
    if channel not in PARTS:  # pragma: no cover - the API's path pattern allows email and sms only
        raise NotFound(f"No channel {channel!r}; use email or sms.")


def _kinds() -> Iterable[str]:
    from loyalty.messaging.kinds import KINDS

    return KINDS


def stored(store: Any, tenant_id: str, kind: str, channel: Channel, locale: str) -> StoredTemplate:
    """The tenant's override for (kind, channel, locale), else the repository's file; NotFound if
    neither exists (a locale with no file and no override)."""
    from loyalty.errors import NotFound
    from loyalty.store import dynamo

    _known(kind, channel)
    override = dynamo.with_retries(lambda: store.get(tenant_id, kind, channel, locale))
    if override is not None:
        parts = {part: getattr(override, part) for part in PARTS[channel]}
        return StoredTemplate(kind, channel, locale, "tenant", parts, override.updated_at, override.updated_by)
    files = file_parts(kind, channel, locale)
    if files is None:
        raise NotFound(
            f"No {channel} template for {kind!r} in {locale!r}: neither this tenant's nor the repository's "
            f"(it has {', '.join(sorted(p.name for p in TEMPLATE_DIR.iterdir() if p.is_dir()))}). "
            "PUT one to add it.",
            kind=kind,
        )
    return StoredTemplate(kind, channel, locale, "repository", files)


def save(
    store: Any,
    actor: Any,
    kind: str,
    channel: Channel,
    locale: str,
    parts: Mapping[str, str | None],
    *,
    audit_table: str,
) -> StoredTemplate:
    """Check and store the tenant's override, audited in the same transaction; it applies to the
    next render (at once in this process, within ``OVERRIDES_TTL_SECONDS`` elsewhere)."""
    from loyalty import clock
    from loyalty.store import dynamo
    from loyalty.store.audit import put_item, record
    from loyalty.store.templates import TemplateOverride

    _known(kind, channel)
    check(kind, channel, locale, parts)
    now = clock.now()
    override = TemplateOverride(
        tenant_id=actor.tenant_id,
        kind=kind,
        channel=channel,
        locale=locale,
        subject=parts.get("subject") if channel == "email" else None,
        html=parts.get("html") if channel == "email" else None,
        text=str(parts["text"]),
        updated_at=clock.isoformat(now),
        updated_by={"key_id": actor.key_id, "role": actor.role.value},
    )
    ref = f"{kind}/{channel}/{locale}/{override.updated_at}"
    audit = record(actor, "template.put", ref=ref, at=now, target=f"{kind}/{channel}/{locale}")
    dynamo.with_retries(lambda: store.put(override, also=[put_item(audit_table, actor.tenant_id, audit)]))
    overrides.forget(actor.tenant_id, kind)
    return stored(store, actor.tenant_id, kind, channel, locale)


def delete(store: Any, actor: Any, kind: str, channel: Channel, locale: str, *, audit_table: str) -> StoredTemplate:
    """Delete the tenant's override (NotFound if there is none); answers what is in force after
    it: the repository's file of that locale, or of the first one of its fallback chain."""
    from botocore.exceptions import ClientError

    from loyalty import clock
    from loyalty.errors import NotFound
    from loyalty.store import dynamo
    from loyalty.store.audit import put_item, record

    _known(kind, channel)
    now = clock.now()
    ref = f"{kind}/{channel}/{locale}/{clock.isoformat(now)}"
    audit = record(actor, "template.delete", ref=ref, at=now, target=f"{kind}/{channel}/{locale}")
    try:
        dynamo.with_retries(
            lambda: store.delete(
                actor.tenant_id, kind, channel, locale, also=[put_item(audit_table, actor.tenant_id, audit)]
            )
        )
    except ClientError as error:
        if "ConditionalCheckFailed" not in dynamo.cancellation_codes(error):
            raise
        raise NotFound(f"This tenant has no own {channel} template for {kind!r} in {locale!r}.", kind=kind) from error
    overrides.forget(actor.tenant_id, kind)
    used = next(c for c in locale_chain(locale) if file_parts(kind, channel, c) is not None)
    return StoredTemplate(kind, channel, used, "repository", file_parts(kind, channel, used) or {})


def preview(
    kind: str,
    channel: Channel,
    locale: str | None,
    data: Mapping[str, Any] | None,
    *,
    tenant_id: str,
    default_locale: str = "en",
) -> Rendered:
    """Render as a customer would get it: with the kind's sample data, the given ``data`` on top;
    the tenant's override if any. A template that cannot render this data is a 422."""
    _known(kind, channel)
    try:
        return render(
            kind,
            channel,
            locale,
            {**spec(kind).sample, **(data or {})},
            tenant_id=tenant_id,
            default_locale=default_locale,
        )
    except RenderError as error:
        raise InvalidRequest(f"The template cannot render this data: {error}.", field="data") from error
