"""The operator's CLI (``python -m loyalty.admin``) against the moto server: tenants and keys.

It runs as ops run it, in a subprocess, with the AWS endpoint in the environment the way boto3
reads it, and the table names given on the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from loyalty import auth
from loyalty.store.audit import AuditStore
from loyalty.store.config import ConfigStore
from tests.support.aws import REGION, create_tables, dynamodb_client


@pytest.fixture
def cli(moto_endpoint: str):
    client = dynamodb_client(moto_endpoint)
    tables = create_tables(client)
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }

    def run(*args: str) -> Any:
        command = [
            sys.executable,
            "-m",
            "loyalty.admin",
            "--config-table",
            tables["ConfigTable"],
            "--ledger-table",
            tables["LedgerTable"],
            *args,
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    run.client = client  # type: ignore[attr-defined]
    run.tables = tables  # type: ignore[attr-defined]
    return run


def test_tenant_and_key_lifecycle_through_the_cli(cli) -> None:
    assert cli("create-tenant", "shop", "--currency", "EUR") == {"tenant_id": "shop", "program_id": "demo"}
    config = ConfigStore(cli.tables["ConfigTable"], cli.client)
    assert config.get_program("shop", "demo").currency == "EUR"

    issued = cli("issue-key", "shop", "--role", "admin", "--name", "ops")
    secret, key_id = issued["api_key"], issued["key_id"]
    assert key_id == auth.key_id_of(secret) and issued["role"] == "admin"
    stored = config.get_api_key(auth.key_hash(secret))
    assert stored is not None and stored.tenant_id == "shop" and stored.active

    listed = cli("list-keys", "shop")
    assert [(k["key_id"], k["role"], k["name"], k["active"]) for k in listed] == [(key_id, "admin", "ops", True)]
    assert secret not in json.dumps(listed)

    rotated = cli("rotate-key", "shop", key_id)
    assert rotated["revoked"]["key_id"] == key_id and rotated["revoked"]["active"] is False
    assert config.get_api_key(auth.key_hash(secret)).active is False
    assert config.get_api_key(auth.key_hash(rotated["api_key"])).role.value == "admin"

    revoked = cli("revoke-key", "shop", rotated["key"]["key_id"])
    assert revoked["active"] is False and revoked["revoked_at"]

    records, _ = AuditStore(cli.tables["LedgerTable"], cli.client).list(
        "shop", since="2000-01-01T00:00:00Z", until="2100-01-01T00:00:00Z", limit=10
    )
    assert sorted(r.action for r in records) == ["key.create", "key.create", "key.revoke", "key.revoke"]
    assert {r.actor["key_id"] for r in records} == {"operator:cli"}


def test_a_key_of_another_tenant_cannot_be_revoked_through_the_cli(cli) -> None:
    cli("create-tenant", "one")
    cli("create-tenant", "two")
    key_id = cli("issue-key", "one")["key_id"]
    command = [sys.executable, "-m", "loyalty.admin", "--config-table", cli.tables["ConfigTable"]]
    command += ["--ledger-table", cli.tables["LedgerTable"], "revoke-key", "two", key_id]
    env = {**os.environ, "AWS_ENDPOINT_URL": cli.client.meta.endpoint_url, "AWS_DEFAULT_REGION": REGION}
    env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stderr.startswith("error: No API key") and "Traceback" not in done.stderr
    assert cli("list-keys", "one")[0]["active"] is True
