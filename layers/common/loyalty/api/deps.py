"""What a route needs besides the request: the services of this process, made once on first use."""

from __future__ import annotations

from functools import cache

from loyalty.ledger import Ledger
from loyalty.members import Stores
from loyalty.settings import settings
from loyalty.store.config import ConfigStore
from loyalty.store.ledger import LedgerStore


@cache
def stores() -> Stores:
    config = settings()
    return Stores(ledger=LedgerStore(config.ledger_table), config=ConfigStore(config.config_table))


@cache
def ledger() -> Ledger:
    return Ledger(stores())
