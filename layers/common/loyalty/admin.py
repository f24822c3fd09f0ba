"""Operator actions: create a tenant, its program and an API key; seed the local demo.

Run against a deployed stack with ``python -m loyalty.admin --config-table <ConfigTableName> ...``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from loyalty import auth, clock
from loyalty.models import ApiKey, Program, Role, Tier
from loyalty.store.config import ConfigStore

DEMO_TENANT = "demo"
DEMO_PROGRAM = "demo"


def demo_program(tenant_id: str = DEMO_TENANT) -> Program:
    return Program(
        tenant_id=tenant_id,
        program_id=DEMO_PROGRAM,
        name="Demo bonus club",
        currency="RUB",
        point_value=100,
        tiers=(
            Tier(name="Silver", threshold=0, accrual_bp=300),
            Tier(name="Gold", threshold=50_000_00, accrual_bp=500),
            Tier(name="Platinum", threshold=200_000_00, accrual_bp=700),
        ),
        max_redeem_share_bp=1_500,
        hold_minutes=15,
        lifetime_days=365,
        allow_transfers=True,
    )


def issue_key(store: ConfigStore, tenant_id: str, role: Role, key: str | None = None) -> str:
    key = key or auth.new_key()
    if not auth.bearer_token(f"Bearer {key}"):
        raise ValueError("an API key is 16 to 128 characters of A-Z a-z 0-9 _ . ~ -")
    api_key = ApiKey(key_id=auth.key_id_of(key), tenant_id=tenant_id, role=role)
    store.put_api_key(auth.key_hash(key), api_key, clock.isoformat(clock.now()))
    return key


def create_tenant(store: ConfigStore, tenant_id: str, program: Program, *, name: str) -> None:
    store.put_program(program)
    store.put_tenant(tenant_id, default_program_id=program.program_id, name=name)


def seed_demo(*, dynamodb: Any, config_table: str, ledger_table: str, api_key: str | None = None) -> dict[str, Any]:
    """The local stack's demo tenant: a program using every feature and one key per role."""
    del ledger_table  # the demo starts with no members
    store = ConfigStore(config_table, client=dynamodb)
    create_tenant(store, DEMO_TENANT, demo_program(), name="Demo shop")
    keys = {Role.INTEGRATION.value: issue_key(store, DEMO_TENANT, Role.INTEGRATION, api_key)}
    return {"tenants": {DEMO_TENANT: {"api_keys": keys, "program_id": DEMO_PROGRAM}}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loyalty.admin", description=__doc__)
    parser.add_argument("--config-table", required=True, help="the stack's ConfigTableName output")
    commands = parser.add_subparsers(dest="command", required=True)
    tenant = commands.add_parser("create-tenant", help="a tenant with the demo program as a start")
    tenant.add_argument("tenant_id")
    tenant.add_argument("--name", default="")
    tenant.add_argument("--currency", default="RUB")
    key = commands.add_parser("issue-key", help="a new API key (printed once, stored as a hash)")
    key.add_argument("tenant_id")
    key.add_argument("--role", choices=[r.value for r in Role], default=Role.INTEGRATION.value)
    args = parser.parse_args(argv)

    store = ConfigStore(args.config_table)
    if args.command == "create-tenant":
        program = demo_program(args.tenant_id).model_copy(update={"currency": args.currency})
        create_tenant(store, args.tenant_id, program, name=args.name or args.tenant_id)
        print(json.dumps({"tenant_id": args.tenant_id, "program_id": program.program_id}))
    else:
        print(json.dumps({"api_key": issue_key(store, args.tenant_id, Role(args.role))}))


if __name__ == "__main__":
    main()
