"""Each function's environment, read once into a typed object (never ``os.environ`` in the logic)."""

from __future__ import annotations

import os
from functools import cache

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    ledger_table: str = Field(min_length=1)
    config_table: str = Field(min_length=1)
    service: str = "loyalty"
    # Messaging: the unsubscribe links' signing secret (a Secrets Manager ARN) and the API's public
    # base URL the links point to; only the functions that sign or verify links set them.
    unsubscribe_secret_arn: str = ""
    public_api_url: str = ""


@cache
def settings() -> Settings:
    """The settings of this process; a missing variable fails loudly at the first request."""
    return Settings(
        ledger_table=os.environ.get("LEDGER_TABLE", ""),
        config_table=os.environ.get("CONFIG_TABLE", ""),
        service=os.environ.get("POWERTOOLS_SERVICE_NAME", "loyalty"),
        unsubscribe_secret_arn=os.environ.get("UNSUBSCRIBE_SECRET_ARN", ""),
        public_api_url=os.environ.get("PUBLIC_API_URL", ""),
    )
