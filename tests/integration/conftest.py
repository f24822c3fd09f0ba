"""Integration fixtures: boto3 against a moto server, tables built from the template."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from loyalty import clock
from loyalty.admin import DEMO_TENANT, seed_demo
from loyalty.ledger import Ledger
from loyalty.members import Stores
from loyalty.models import Actor, Role
from loyalty.store.config import ConfigStore
from loyalty.store.ledger import LedgerStore
from tests.support.aws import create_tables, dynamodb_client, moto_server


@pytest.fixture(scope="session")
def moto_endpoint():
    with moto_server() as endpoint:
        yield endpoint


@dataclass
class FakeClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


@pytest.fixture
def fake_clock(monkeypatch):
    fake = FakeClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    monkeypatch.setattr(clock, "now", fake.now)
    return fake


@dataclass
class World:
    client: object
    tables: dict[str, str]
    stores: Stores
    ledger: Ledger
    actor: Actor


@pytest.fixture
def world(moto_endpoint, fake_clock) -> World:
    client = dynamodb_client(moto_endpoint)
    tables = create_tables(client)
    seed_demo(dynamodb=client, config_table=tables["ConfigTable"], ledger_table=tables["LedgerTable"])
    stores = Stores(
        ledger=LedgerStore(tables["LedgerTable"], client), config=ConfigStore(tables["ConfigTable"], client)
    )
    actor = Actor(tenant_id=DEMO_TENANT, key_id="key_test", role=Role.ADMIN)  # may do everything
    return World(client=client, tables=tables, stores=stores, ledger=Ledger(stores), actor=actor)
