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


class SendingSettings(BaseModel):
    """What the messaging functions read from the stack (``loyalty.messaging.sending``)."""

    model_config = ConfigDict(frozen=True)

    send_queue_url: str = ""
    sender_email: str = ""
    configuration_set: str = ""
    ses_max_send_rate: float = Field(default=14.0, gt=0)
    sender_concurrency: int = Field(default=2, ge=1)
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "09:00"
    marketing_weekly_cap: int = Field(default=2, ge=0)
    notice_burst_seconds: int = Field(default=120, ge=0, le=900)


@cache
def sending_settings() -> SendingSettings:
    """The messaging settings of this process (empty strings where a function does not need one)."""
    env = os.environ
    return SendingSettings(
        send_queue_url=env.get("SEND_QUEUE_URL", ""),
        sender_email=env.get("SENDER_EMAIL", ""),
        configuration_set=env.get("SES_CONFIGURATION_SET", ""),
        ses_max_send_rate=float(env.get("SES_MAX_SEND_RATE", "14")),
        sender_concurrency=int(env.get("SENDER_MAX_CONCURRENCY", "2")),
        quiet_hours_start=env.get("QUIET_HOURS_START", "21:00"),
        quiet_hours_end=env.get("QUIET_HOURS_END", "09:00"),
        marketing_weekly_cap=int(env.get("MARKETING_WEEKLY_CAP", "2")),
        notice_burst_seconds=int(env.get("NOTICE_BURST_SECONDS", "120")),
    )
