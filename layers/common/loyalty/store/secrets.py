"""Secrets from AWS Secrets Manager, read once per process (per Lambda execution environment)."""

from __future__ import annotations

from functools import cache

import boto3


@cache
def secret_string(secret_id: str) -> str:
    """The secret's current value. Cached for the life of the process: a rotated secret applies in
    new execution environments (and old links stay valid only as long as the old value is used)."""
    return boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
