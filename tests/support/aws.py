"""AWS for tests: moto's server on loopback, and the tables built from infra/template.yaml."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from local.aws import MotoServer
from local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
REGION = "us-east-1"


@contextmanager
def moto_server() -> Iterator[str]:
    """The local stack's moto server (DynamoDB serialized) on a free loopback port; yields its URL."""
    server = MotoServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def dynamodb_client(endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def table_definitions() -> dict[str, dict[str, Any]]:
    """Every DynamoDB table of the template: logical id -> create_table arguments."""
    resources = load_template(TEMPLATE)["Resources"]
    tables = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        definition: dict[str, Any] = {
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            definition["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("StreamSpecification"):
            definition["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        tables[logical_id] = definition
    return tables


def create_tables(client: Any) -> dict[str, str]:
    """Create the template's tables under fresh names; returns logical id -> physical name."""
    names = {}
    suffix = uuid.uuid4().hex[:8]
    for logical_id, definition in table_definitions().items():
        name = f"{logical_id}-{suffix}"
        client.create_table(TableName=name, **definition)
        names[logical_id] = name
    return names
