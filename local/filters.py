"""Event filtering of event source mappings (``FilterCriteria``): EventBridge-style patterns.

Supported: exact values, ``prefix``, ``suffix``, ``equals-ignore-case``, ``anything-but`` (values or
a prefix), ``exists`` and ``numeric`` (``=``, ``<``, ``<=``, ``>``, ``>=``, ranges). A record is
delivered when it matches any of the filters; with no filters every record is delivered.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable
from typing import Any

_MISSING = object()
_NUMERIC = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def parse_patterns(patterns: Iterable[Any]) -> list[dict[str, Any]]:
    """Patterns as the template gives them (JSON strings or already mappings)."""
    return [json.loads(item) if isinstance(item, str) else item for item in patterns]


def matches_any(patterns: list[dict[str, Any]], record: dict[str, Any]) -> bool:
    return not patterns or any(matches(pattern, record) for pattern in patterns)


def matches(pattern: dict[str, Any], event: Any) -> bool:
    for key, rule in pattern.items():
        value = event.get(key, _MISSING) if isinstance(event, dict) else _MISSING
        if isinstance(rule, dict):
            if not isinstance(value, dict) or not matches(rule, value):
                return False
        elif isinstance(rule, list):
            if not _matches_rules(rule, value):
                return False
        else:
            raise ValueError(f"filter pattern values must be objects or arrays, got {rule!r} for {key!r}")
    return True


def _matches_rules(rules: list[Any], value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(_matches_rule(rule, item) for rule in rules for item in values) or (
        value is _MISSING and any(isinstance(rule, dict) and rule.get("exists") is False for rule in rules)
    )


def _matches_rule(rule: Any, value: Any) -> bool:
    if not isinstance(rule, dict):
        return value is not _MISSING and rule == value
    if "exists" in rule:
        return (value is not _MISSING) == bool(rule["exists"])
    if value is _MISSING:
        return False
    if "prefix" in rule:
        return isinstance(value, str) and value.startswith(str(rule["prefix"]))
    if "suffix" in rule:
        return isinstance(value, str) and value.endswith(str(rule["suffix"]))
    if "equals-ignore-case" in rule:
        return isinstance(value, str) and value.lower() == str(rule["equals-ignore-case"]).lower()
    if "anything-but" in rule:
        excluded = rule["anything-but"]
        if isinstance(excluded, dict) and "prefix" in excluded:
            return not (isinstance(value, str) and value.startswith(str(excluded["prefix"])))
        excluded_values = excluded if isinstance(excluded, list) else [excluded]
        return value not in excluded_values
    if "numeric" in rule:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        conditions = rule["numeric"]
        return all(_NUMERIC[op](value, bound) for op, bound in zip(conditions[::2], conditions[1::2], strict=True))
    raise ValueError(f"unsupported filter rule {rule!r}")


def sqs_filter_view(record: dict[str, Any]) -> dict[str, Any]:
    """SQS filters see ``body`` as JSON when the body is a JSON object, else as a string."""
    try:
        body = json.loads(record["body"])
    except (TypeError, ValueError):
        return record
    return {**record, "body": body} if isinstance(body, dict) else record
