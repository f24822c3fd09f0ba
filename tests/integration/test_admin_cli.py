"""The operator's CLI (``python -m loyalty.admin``) against the moto server: tenants and keys.

It runs as ops run it, in a subprocess, with the AWS endpoint in the environment the way boto3
reads it, and the table names given on the command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
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
    run.env = env  # type: ignore[attr-defined]
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


def test_the_burn_index_backfill_upgrades_old_lots_and_tenants_once(cli) -> None:
    """Data written before the per-tenant due index: a tenant missing from the registry, a lot with
    no gsi1 keys, a lot under the old key (no tenant in it), a burn marker with none. The dry run
    counts them and changes nothing; the backfill fixes them, the nightly burn then finds the
    member, and a rerun finds nothing to do."""
    from loyalty import burning
    from loyalty.store import dynamo, keys
    from loyalty.store.burn import BurnStore

    cli("create-tenant", "shop")
    client, ledger_table, config_table = cli.client, cli.tables["LedgerTable"], cli.tables["ConfigTable"]
    client.delete_item(TableName=config_table, Key=dynamo.marshal({"pk": keys.TENANTS_PK, "sk": "shop"}))
    pk = keys.member_pk("shop", "old-member")
    old_shard = keys.due_shard("shop", "old-member")
    items = [
        {"pk": pk, "sk": keys.lot_sk("2027-01-01"), "burn_date": "2027-01-01", "remaining": 30},
        {
            "pk": pk,
            "sk": keys.lot_sk("2027-02-01"),
            "burn_date": "2027-02-01",
            "remaining": 20,
            "gsi1pk": f"BURN#2027-02-01#{old_shard:02d}",
            "gsi1sk": pk,
        },
        {
            "pk": pk,
            "sk": keys.lot_sk("2027-03-01"),
            "burn_date": "2027-03-01",
            "remaining": 10,
            **keys.burn_index("shop", "old-member", "2027-03-01"),
        },
        {"pk": pk, "sk": keys.BURN_MARKER_SK, "due": "2027-04-01"},
        {"pk": pk, "sk": keys.MEMBER_SK, "tenant_id": "shop", "member_id": "old-member"},  # not indexed
    ]
    for item in items:
        client.put_item(TableName=ledger_table, Item=dynamo.marshal(item))
    burns = BurnStore(ledger_table, client)

    def due(day: str) -> set[str]:
        return set(burning.due_members(burns, "shop", date.fromisoformat(day)))

    assert due("2027-01-01") == due("2027-02-01") == due("2027-04-01") == set()
    dry = cli("backfill-burn-index", "--segments", "3", "--dry-run")
    assert dry == {"tenants": 0, "checked": 4, "fixed": 3, "gone": 0, "dry_run": True}
    assert due("2027-01-01") == set()

    done = cli("backfill-burn-index", "--segments", "3")
    assert done["fixed"] == 3 and done["checked"] == 4 and done["tenants"] == 1
    for day in ("2027-01-01", "2027-02-01", "2027-03-01", "2027-04-01"):
        assert due(day) == {"old-member"}, day
    assert "shop" in dict(ConfigStore(config_table, client).all_tenant_settings())
    assert cli("backfill-burn-index")["fixed"] == 0  # a rerun has nothing left to do


def test_the_burn_time_of_a_tenant_through_the_cli(cli) -> None:
    cli("create-tenant", "shop")
    assert cli("set-burn-time", "shop", "--zone", "Asia/Almaty", "--time", "01:15") == {
        "tenant_id": "shop",
        "burn_time_zone": "Asia/Almaty",
        "burn_time": "01:15",
        "chain_interval_days": 25,
        "digest_interval_days": 14,
        "birthday_coupon_days": 14,
    }
    stored = ConfigStore(cli.tables["ConfigTable"], cli.client).tenant_settings("shop")
    assert stored is not None and (stored.burn_time_zone, stored.burn_time) == ("Asia/Almaty", "01:15")
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "loyalty.admin",
            "--config-table",
            cli.tables["ConfigTable"],
            "--ledger-table",
            cli.tables["LedgerTable"],
            "set-burn-time",
            "shop",
            "--time",
            "12:00",
        ],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2 and "burn_time" in refused.stderr and "Traceback" not in refused.stderr
