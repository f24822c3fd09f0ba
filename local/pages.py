"""``GET /_local/reports``: the report of a seeded tenant as an HTML page with a chart rendered
server-side (PNG, inline), for a look at what ``GET /v1/reports/summary`` answers.

The page asks the API itself, through the stack's gateway with the tenant's seeded admin key (the
real authorizer and function run), so it shows exactly what a client gets. The chart is
``loyalty.reports.chart_png`` (``loyalty.chart``: zlib, no plotting library). Query parameters
are passed on (``from``, ``to``, ``program_id``, ``granularity``), plus ``tenant`` (default
``demo``). A stack without the ``loyalty`` package or without seeded tenants answers 404.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from local.control import problem

PASSED_ON = ("from", "to", "program_id", "granularity")


class ReportsPage:
    def __init__(self, api: Callable[[Request], Response], tenants: Callable[[], Mapping[str, Any]]) -> None:
        self.api = api
        self.tenants = tenants

    def __call__(self, request: Request) -> Response:
        try:
            from loyalty.reports import chart_png
        except ImportError:
            return problem(404, "Not Found", "the loyalty package is not installed: no reports page")
        tenant = request.args.get("tenant", "demo")
        key = ((self.tenants().get(tenant) or {}).get("api_keys") or {}).get("admin")
        if not key:
            return problem(404, "Not Found", f"no seeded tenant {tenant!r} with an admin key")
        query = urlencode({name: request.args[name] for name in PASSED_ON if name in request.args})
        builder = EnvironBuilder(
            path="/v1/reports/summary",
            query_string=query,
            headers={"Authorization": f"Bearer {key}"},
        )
        answer = self.api(Request(builder.get_environ()))
        body = answer.get_data(as_text=True)
        if answer.status_code != 200:
            return Response(body, status=answer.status_code, content_type=answer.content_type)
        summary = json.loads(body)
        chart = base64.b64encode(chart_png(summary)).decode()
        return Response(_page(tenant, summary, chart, query), status=200, content_type="text/html; charset=utf-8")


def _page(tenant: str, summary: Mapping[str, Any], chart: str, query: str) -> str:
    columns = ("accrued", "redeemed", "burned", "refunded", "adjusted", "transferred", "net")
    head = "".join(f"<th>{name}</th>" for name in ("period", *columns, "outstanding", "enrolled", "active"))
    rows = []
    for period in summary["periods"]:
        cells = [period["period"], *(period["points"][c] for c in columns), period["outstanding_points"]]
        cells += [period["members"]["enrolled"], period["members"]["active"]]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    csv_link = "/v1/reports/summary?" + (query + "&" if query else "") + "format=csv"
    title = f"Reports: {tenant}, {summary['from']} to {summary['to']} ({summary['granularity']})"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<img alt='issued, redeemed, burned and outstanding points' src='data:image/png;base64,{chart}'>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"<p>CSV: <code>{html.escape(csv_link)}</code> (with an admin key)</p></body></html>"
    )
