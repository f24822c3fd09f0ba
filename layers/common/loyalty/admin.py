"""Operator actions: create a tenant, its program and an API key; set when its nightly burn runs;
upgrade a stack's data (``backfill-burn-index``, ``backfill-touches``); seed the local demo.

Run against a deployed stack with ``python -m loyalty.admin --stack <stack name> ...`` (AWS
credentials for its account and region); every key change is written to the tenant's audit log
with the actor ``operator:cli``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from loyalty import auth
from loyalty.errors import DomainError, InvalidRequest
from loyalty.models import Actor, Program, Role, Tier
from loyalty.store.config import ConfigStore
from loyalty.tenancy import ApiKeys, TenantSettingsAdmin, key_view

DEMO_TENANT = "demo"
DEMO_PROGRAM = "demo"


DEMO_WELCOME_BONUS = 100  # points every new member of the demo program starts with


def demo_program(tenant_id: str = DEMO_TENANT) -> Program:
    """The local stack's program: every feature at work, so a newcomer sees each (tiers by lifetime
    spend, a 15 % cap on the share of an order payable with bonuses, a fixed one-year bonus
    lifetime, transfers, and welcome, birthday and referral bonuses)."""
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
        welcome_bonus=DEMO_WELCOME_BONUS,
        birthday_bonus=300,
        referral_bonus_referrer=500,
        referral_bonus_referee=250,
    )


OTHER_TENANT = "other"  # a second local tenant, so that isolation can be tried by hand and in tests
OPERATOR = "operator:cli"


def operator(tenant_id: str) -> Actor:
    """Who the audit log names for what an operator does with this CLI."""
    return Actor(tenant_id=tenant_id, key_id=OPERATOR, role=Role.ADMIN)


def issue_key(
    store: ConfigStore, ledger_table: str, tenant_id: str, role: Role, key: str | None = None, name: str = ""
) -> str:
    if key is not None and not auth.bearer_token(f"Bearer {key}"):
        raise ValueError("an API key is 16 to 128 characters of A-Z a-z 0-9 _ . ~ -")
    _, secret = ApiKeys(store, ledger_table).create(operator(tenant_id), role, name or role.value, secret=key)
    return secret


def create_tenant(store: ConfigStore, tenant_id: str, program: Program, *, name: str) -> None:
    store.put_program(program)
    store.put_tenant(tenant_id, default_program_id=program.program_id, name=name)


def seed_demo(*, dynamodb: Any, config_table: str, ledger_table: str, api_key: str | None = None) -> dict[str, Any]:
    """The local stack's tenants: ``demo`` and ``other``, each with the demo program and a key of
    every role. ``api_key`` pins the demo tenant's integration key."""
    store = ConfigStore(config_table, client=dynamodb)
    tenants: dict[str, Any] = {}
    for tenant_id in (DEMO_TENANT, OTHER_TENANT):
        create_tenant(store, tenant_id, demo_program(tenant_id), name=f"{tenant_id.title()} shop")
        keys = {}
        for role in Role:
            pinned = api_key if tenant_id == DEMO_TENANT and role is Role.INTEGRATION else None
            keys[role.value] = issue_key(store, ledger_table, tenant_id, role, pinned)
        tenants[tenant_id] = {"api_keys": keys, "program_id": DEMO_PROGRAM}
    return {"tenants": tenants}


def backfill_burn_index(config_table: str, ledger_table: str, segments: int, *, dry_run: bool) -> dict[str, int]:
    """The upgrade of a stack whose data predates the nightly burn's per-tenant index: every
    tenant in the registry (``ConfigStore.register_tenants``), then every lot and burn marker
    re-keyed in ``segments`` parallel Scan segments (``BurnStore.reindex``). Safe to rerun, and
    safe while the stack serves: a lot spent meanwhile is left alone."""
    from concurrent.futures import ThreadPoolExecutor

    from loyalty.store.burn import BurnStore

    if not 1 <= segments <= 64:
        raise InvalidRequest("--segments must be between 1 and 64.")
    tenants = 0 if dry_run else ConfigStore(config_table).register_tenants()
    store = BurnStore(ledger_table)
    with ThreadPoolExecutor(max_workers=segments) as pool:
        parts = list(pool.map(lambda s: store.reindex(s, segments, dry_run=dry_run), range(segments)))
    totals = {name: sum(part[name] for part in parts) for name in ("checked", "fixed", "gone")}
    return {"tenants": tenants, **totals, "dry_run": dry_run}


def backfill_touches(config_table: str, ledger_table: str, segments: int, *, dry_run: bool) -> dict[str, Any]:
    """The upgrade of a stack whose members predate the touches job: every member without an
    ``IDX#TOUCH`` marker gets one at the first step of its welcome chain (or digest) that begins
    after now, so nothing is sent for the past. ``segments`` parallel Scan segments; safe to rerun,
    and safe while the stack serves (a member enrolled meanwhile has its marker already)."""
    from concurrent.futures import ThreadPoolExecutor

    from loyalty import clock, touches
    from loyalty.members import Stores
    from loyalty.store.ledger import LedgerStore
    from loyalty.store.touches import TouchStore

    if not 1 <= segments <= 64:
        raise InvalidRequest("--segments must be between 1 and 64.")
    store = TouchStore(ledger_table)
    stores = Stores(ledger=LedgerStore(ledger_table), config=ConfigStore(config_table))
    at = clock.now()
    with ThreadPoolExecutor(max_workers=segments) as pool:
        parts = list(
            pool.map(lambda s: touches.backfill(store, stores, s, segments, at=at, dry_run=dry_run), range(segments))
        )
    totals = {name: sum(part[name] for part in parts) for name in ("checked", "added", "erased")}
    return {**totals, "dry_run": dry_run}


def _tables(args: argparse.Namespace) -> tuple[str, str]:
    """The config and ledger table names: given, or read from the stack's outputs."""
    if args.config_table and args.ledger_table:
        return args.config_table, args.ledger_table
    if not args.stack:
        raise SystemExit("give --stack NAME, or both --config-table and --ledger-table")
    import boto3

    stack = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    return outputs["ConfigTableName"], outputs["LedgerTableName"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loyalty.admin", description=__doc__)
    parser.add_argument("--stack", help="the deployed stack's name: its outputs name the tables")
    parser.add_argument("--config-table", help="the stack's ConfigTableName output (instead of --stack)")
    parser.add_argument("--ledger-table", help="the stack's LedgerTableName output (instead of --stack)")
    commands = parser.add_subparsers(dest="command", required=True)
    tenant = commands.add_parser("create-tenant", help="a tenant with the demo program as a start")
    tenant.add_argument("tenant_id")
    tenant.add_argument("--name", default="")
    tenant.add_argument("--currency", default="RUB")
    key = commands.add_parser("issue-key", help="a new API key (printed once, stored as a hash)")
    key.add_argument("tenant_id")
    key.add_argument("--role", choices=[r.value for r in Role], default=Role.INTEGRATION.value)
    key.add_argument("--name", default="", help="what the key is for, e.g. 'web shop backend'")
    listing = commands.add_parser("list-keys", help="the tenant's keys (ids, roles, state; never the secrets)")
    listing.add_argument("tenant_id")
    for verb, text in (("rotate-key", "a new key with the same role; the old one is revoked"), ("revoke-key", "")):
        command = commands.add_parser(verb, help=text or "stop a key from working")
        command.add_argument("tenant_id")
        command.add_argument("key_id", help="the key's public id (key_...), as list-keys shows it")
    backfill = commands.add_parser(
        "backfill-burn-index",
        help="upgrade: register every tenant for the nightly burn, give every lot and burn marker its due-index keys",
    )
    backfill.add_argument("--segments", type=int, default=4, help="parallel Scan segments (1-64)")
    backfill.add_argument("--dry-run", action="store_true", help="count what would change, change nothing")
    touches_command = commands.add_parser(
        "backfill-touches",
        help="upgrade: give every member enrolled before the touches job its marker (at its next step)",
    )
    touches_command.add_argument("--segments", type=int, default=4, help="parallel Scan segments (1-64)")
    touches_command.add_argument("--dry-run", action="store_true", help="count what would change, change nothing")
    settings_command = commands.add_parser("set-burn-time", help="when the tenant's nightly burn runs")
    settings_command.add_argument("tenant_id")
    settings_command.add_argument("--zone", help="IANA time zone; leave out for the stack's default (BurnTimeZone)")
    settings_command.add_argument("--time", default="00:30", help="local HH:MM, 00:00-05:59 (default 00:30)")
    args = parser.parse_args(argv)

    config_table, ledger_table = _tables(args)
    if args.command == "backfill-burn-index":
        print(json.dumps(backfill_burn_index(config_table, ledger_table, args.segments, dry_run=args.dry_run)))
        return
    if args.command == "backfill-touches":
        print(json.dumps(backfill_touches(config_table, ledger_table, args.segments, dry_run=args.dry_run)))
        return
    if args.command == "set-burn-time":
        changes = {"burn_time_zone": args.zone, "burn_time": args.time}  # the other settings stay as they are
        done = TenantSettingsAdmin(ConfigStore(config_table), ledger_table).change(operator(args.tenant_id), changes)
        print(json.dumps({"tenant_id": args.tenant_id, **done.model_dump()}))
        return
    store = ConfigStore(config_table)
    keys = ApiKeys(store, ledger_table)
    if args.command == "create-tenant":
        program = demo_program(args.tenant_id).model_copy(update={"currency": args.currency})
        create_tenant(store, args.tenant_id, program, name=args.name or args.tenant_id)
        print(json.dumps({"tenant_id": args.tenant_id, "program_id": program.program_id}))
    elif args.command == "issue-key":
        secret = issue_key(store, ledger_table, args.tenant_id, Role(args.role), name=args.name)
        print(json.dumps({"api_key": secret, "key_id": auth.key_id_of(secret), "role": args.role}))
    elif args.command == "list-keys":
        print(json.dumps([key_view(k) for k in keys.list(operator(args.tenant_id))], indent=2))
    elif args.command == "rotate-key":
        new, secret, old = keys.rotate(operator(args.tenant_id), args.key_id)
        print(json.dumps({"api_key": secret, "key": key_view(new), "revoked": key_view(old)}, indent=2))
    else:
        print(json.dumps(key_view(keys.revoke(operator(args.tenant_id), args.key_id)), indent=2))


def run(argv: list[str] | None = None) -> int:
    """``main`` for a terminal: a refusal is one line on stderr and exit status 2, not a traceback."""
    try:
        main(argv)
    except DomainError as error:
        print(f"error: {error.detail}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(run())
