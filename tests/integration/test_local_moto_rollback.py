"""The local stack's moto patch: a cancelled transaction leaves every item and the table's stream
exactly as they were, and a committed one writes every item, so the ledger's conditions are what
the tests exercise (local/aws.py: items are rolled back, not whole tables copied)."""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.aws import REGION, dynamodb_client


@pytest.fixture
def table(moto_endpoint: str):
    client = dynamodb_client(moto_endpoint)
    name = f"rollback-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    streams = boto3.client(
        "dynamodbstreams",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    arn = client.describe_table(TableName=name)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]

    def records() -> list[dict]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        return streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]

    yield client, name, records
    client.delete_table(TableName=name)


def _items(client, name: str) -> dict[tuple[str, str], dict]:
    return {(i["pk"]["S"], i["sk"]["S"]): i for i in client.scan(TableName=name)["Items"]}


def test_a_cancelled_transaction_changes_no_item_and_no_stream_record(table) -> None:
    client, name, records = table
    client.put_item(TableName=name, Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1"}})
    client.put_item(TableName=name, Item={"pk": {"S": "b"}, "sk": {"S": "1"}, "n": {"N": "5"}})
    client.put_item(TableName=name, Item={"pk": {"S": "c"}, "sk": {"S": "1"}, "n": {"N": "5"}})
    before, stream_before = _items(client, name), records()

    with pytest.raises(ClientError) as refused:
        client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": name,
                        "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                        "UpdateExpression": "SET n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
                {"Put": {"TableName": name, "Item": {"pk": {"S": "new"}, "sk": {"S": "1"}}}},
                {"Delete": {"TableName": name, "Key": {"pk": {"S": "b"}, "sk": {"S": "1"}}}},
                {
                    "ConditionCheck": {
                        "TableName": name,
                        "Key": {"pk": {"S": "c"}, "sk": {"S": "1"}},
                        "ConditionExpression": "n = :nine",
                        "ExpressionAttributeValues": {":nine": {"N": "9"}},
                    }
                },
            ]
        )
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert _items(client, name) == before
    assert records() == stream_before


def test_a_committed_transaction_writes_every_item_and_its_records(table) -> None:
    client, name, records = table
    client.put_item(TableName=name, Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1"}})
    stream_before = len(records())
    client.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": name,
                    "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                    "UpdateExpression": "SET n = :two",
                    "ConditionExpression": "n = :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":two": {"N": "2"}},
                }
            },
            {"Put": {"TableName": name, "Item": {"pk": {"S": "new"}, "sk": {"S": "1"}}}},
        ]
    )
    items = _items(client, name)
    assert items[("a", "1")]["n"] == {"N": "2"} and ("new", "1") in items
    assert [r["eventName"] for r in records()[stream_before:]] == ["MODIFY", "INSERT"]
