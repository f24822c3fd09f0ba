"""Creating the template's data resources in moto, and what ``Ref``/``GetAtt`` return for them.

One function per resource type, registered in :data:`CREATORS`. A creator receives the resource's
resolved properties and returns a :class:`Created` with its ``Ref`` value and attributes, which the
stack registers with the resolver so later resources (a queue's redrive policy, a function's
environment) can refer to them. To emulate a new type, add a creator here (see docs/LOCAL_STACK.md).

Physical names are the explicit name property when the template sets one, else the logical id:
readable, stable across restarts, and what tests and ``stack.json`` show.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.aws import AwsClients
from local.template import ACCOUNT_ID, REGION, as_env_value

log = logging.getLogger(__name__)


@dataclass
class Created:
    """A resource that exists locally: its ``Ref`` value, ``GetAtt`` attributes and where it is
    listed in stack.json (``section`` is tables/queues/topics/parameters/secrets/buckets)."""

    ref: Any
    attributes: dict[str, Any] = field(default_factory=dict)
    section: str | None = None
    listed_as: Any = None


Creator = Callable[[AwsClients, str, dict[str, Any]], Created]


# --------------------------------------------------------------------------- DynamoDB

_TABLE_INDEX_KEYS = ("IndexName", "KeySchema", "Projection")


def _throughput(props: dict[str, Any]) -> dict[str, int]:
    given = props.get("ProvisionedThroughput") or {}
    return {
        "ReadCapacityUnits": int(given.get("ReadCapacityUnits", 5)),
        "WriteCapacityUnits": int(given.get("WriteCapacityUnits", 5)),
    }


def _table_result(clients: AwsClients, name: str) -> Created:
    table = clients("dynamodb").describe_table(TableName=name)["Table"]
    attributes = {"Arn": table["TableArn"]}
    if table.get("LatestStreamArn"):
        attributes["StreamArn"] = table["LatestStreamArn"]
    return Created(ref=name, attributes=attributes, section="tables", listed_as=name)


def create_table(clients: AwsClients, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("TableName") or logical_id
    billing = props.get("BillingMode", "PROVISIONED")
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": billing,
    }
    if billing == "PROVISIONED":
        request["ProvisionedThroughput"] = _throughput(props)
    if props.get("GlobalSecondaryIndexes"):
        indexes = []
        for index in props["GlobalSecondaryIndexes"]:
            entry = {key: index[key] for key in _TABLE_INDEX_KEYS if key in index}
            if billing == "PROVISIONED":
                entry["ProvisionedThroughput"] = _throughput(index)
            indexes.append(entry)
        request["GlobalSecondaryIndexes"] = indexes
    if props.get("LocalSecondaryIndexes"):
        request["LocalSecondaryIndexes"] = [
            {key: index[key] for key in _TABLE_INDEX_KEYS if key in index} for index in props["LocalSecondaryIndexes"]
        ]
    stream = props.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    # DeletionProtectionEnabled, SSE and point-in-time recovery are left out on purpose: they
    # change nothing moto emulates, and protection would only get in the way of throwaway stacks.
    dynamodb = clients("dynamodb")
    dynamodb.create_table(**request)
    ttl = props.get("TimeToLiveSpecification") or {}
    if _truthy(ttl.get("Enabled")) and ttl.get("AttributeName"):
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
        )
    return _table_result(clients, name)


_SIMPLE_KEY_TYPES = {"String": "S", "Number": "N", "Binary": "B"}


def create_simple_table(clients: AwsClients, logical_id: str, props: dict[str, Any]) -> Created:
    key = props.get("PrimaryKey") or {"Name": "id", "Type": "String"}
    table_props: dict[str, Any] = {
        "TableName": props.get("TableName") or logical_id,
        "AttributeDefinitions": [{"AttributeName": key["Name"], "AttributeType": _SIMPLE_KEY_TYPES[key["Type"]]}],
        "KeySchema": [{"AttributeName": key["Name"], "KeyType": "HASH"}],
        "BillingMode": "PROVISIONED" if props.get("ProvisionedThroughput") else "PAY_PER_REQUEST",
    }
    if props.get("ProvisionedThroughput"):
        table_props["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    return create_table(clients, logical_id, table_props)


# --------------------------------------------------------------------------- SQS

_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)


def create_queue(clients: AwsClients, logical_id: str, props: dict[str, Any]) -> Created:
    fifo = _truthy(props.get("FifoQueue"))
    name = props.get("QueueName") or (f"{logical_id}.fifo" if fifo else logical_id)
    attributes = {key: as_env_value(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    for policy in ("RedrivePolicy", "RedriveAllowPolicy"):
        if props.get(policy):
            value = props[policy]
            attributes[policy] = value if isinstance(value, str) else json.dumps(value)
    sqs = clients("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Created(
        ref=url, attributes={"Arn": arn, "QueueName": name, "QueueUrl": url}, section="queues", listed_as=url
    )


# --------------------------------------------------------------------------- SNS


def _subscribe(clients: AwsClients, topic_arn: str, protocol: str, endpoint: str, extra: dict[str, Any]) -> str | None:
    if protocol == "lambda":
        # moto would try to run the function itself; the local stack has no SNS event source.
        log.warning("SNS subscription %s -> lambda %s is not emulated", topic_arn, endpoint)
        return None
    attributes = {key: value if isinstance(value, str) else json.dumps(value) for key, value in extra.items()}
    result = clients("sns").subscribe(
        TopicArn=topic_arn, Protocol=protocol, Endpoint=endpoint, Attributes=attributes, ReturnSubscriptionArn=True
    )
    return str(result["SubscriptionArn"])


def create_topic(clients: AwsClients, logical_id: str, props: dict[str, Any]) -> Created:
    fifo = _truthy(props.get("FifoTopic"))
    name = props.get("TopicName") or (f"{logical_id}.fifo" if fifo else logical_id)
    attributes = {
        key: as_env_value(props[key])
        for key in ("DisplayName", "FifoTopic", "ContentBasedDeduplication")
        if key in props
    }
    arn = clients("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
    for subscription in props.get("Subscription") or []:
        _subscribe(clients, arn, subscription["Protocol"], subscription["Endpoint"], {})
    return Created(ref=arn, attributes={"TopicArn": arn, "TopicName": name}, section="topics", listed_as=arn)


def create_subscription(clients: AwsClients, logical_id: str, props: dict[str, Any]) -> Created:
    extra = {
        key: props[key]
        for key in ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy")
        if key in props
    }
    if "RawMessageDelivery" in extra:
        extra["RawMessageDelivery"] = as_env_value(extra["RawMessageDelivery"])
    arn = _subscribe(clients, props["TopicArn"], props["Protocol"], props["Endpoint"], extra)
    return Created(ref=arn or logical_id)


# --------------------------------------------------------------------------- SES


def create_ses_configuration_set(clients: AwsClients, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("Name") or logical_id
    clients("sesv2").create_configuration_set(ConfigurationSetName=name)
    return Created(ref=name)


def create_ses_email_identity(clients: AwsClients, logical_id: str, props: dict[str, Any]) -> Created:
    """An identity moto treats as verified at once (AWS sends a verification e-mail, or DKIM)."""
    identity = props["EmailIdentity"]
    request: dict[str, Any] = {"EmailIdentity": identity}
    configuration_set = (props.get("ConfigurationSetAttributes") or {}).get("ConfigurationSetName")
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    clients("sesv2").create_email_identity(**request)
    return Created(ref=identity)


# --------------------------------------------------------------------------- SSM, Secrets Manager, S3


def create_ssm_parameter(clients: AwsClients, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("Name") or logical_id
    kind = props.get("Type", "String")
    request = {"Name": name, "Value": as_env_value(props["Value"]), "Type": kind, "Overwrite": True}
    if props.get("Description"):
        request["Description"] = props["Description"]
    clients("ssm").put_parameter(**request)
    return Created(ref=name, attributes={"Type": kind, "Value": request["Value"]}, section="parameters", listed_as=name)


def generate_secret_string(spec: dict[str, Any]) -> str:
    """GenerateSecretString: a random password, optionally merged into a JSON template."""
    alphabet = string.ascii_lowercase
    if not _truthy(spec.get("ExcludeUppercase")):
        alphabet += string.ascii_uppercase
    if not _truthy(spec.get("ExcludeNumbers")):
        alphabet += string.digits
    if not _truthy(spec.get("ExcludePunctuation")):
        alphabet += "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    if _truthy(spec.get("IncludeSpace")):
        alphabet += " "
    excluded = set(spec.get("ExcludeCharacters", ""))
    alphabet = "".join(char for char in alphabet if char not in excluded)
    password = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    template, key = spec.get("SecretStringTemplate"), spec.get("GenerateStringKey")
    if template and key:
        document = json.loads(template)
        document[key] = password
        return json.dumps(document)
    return password


def create_secret(clients: AwsClients, logical_id: str, props: dict[str, Any]) -> Created:
    name = props.get("Name") or logical_id
    if "SecretString" in props:
        value = as_env_value(props["SecretString"])
    else:
        value = generate_secret_string(props.get("GenerateSecretString") or {})
    request = {"Name": name, "SecretString": value}
    if props.get("Description"):
        request["Description"] = props["Description"]
    arn = clients("secretsmanager").create_secret(**request)["ARN"]
    return Created(ref=arn, attributes={"Id": arn}, section="secrets", listed_as=arn)


def create_bucket(clients: AwsClients, logical_id: str, props: dict[str, Any]) -> Created:
    # Bucket names are lowercase letters, digits, dots and hyphens, 3-63 characters.
    name = props.get("BucketName") or re.sub(r"[^a-z0-9.-]", "-", logical_id.lower()).strip("-.")[:63].ljust(3, "0")
    clients("s3").create_bucket(Bucket=name)  # us-east-1 takes no LocationConstraint
    attributes = {
        "Arn": f"arn:aws:s3:::{name}",
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
        "WebsiteURL": f"http://{name}.s3-website-{REGION}.amazonaws.com",
    }
    return Created(ref=name, attributes=attributes, section="buckets", listed_as=name)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


CREATORS: dict[str, Creator] = {
    "AWS::DynamoDB::Table": create_table,
    "AWS::Serverless::SimpleTable": create_simple_table,
    "AWS::SQS::Queue": create_queue,
    "AWS::SNS::Topic": create_topic,
    "AWS::SNS::Subscription": create_subscription,
    "AWS::SSM::Parameter": create_ssm_parameter,
    "AWS::SecretsManager::Secret": create_secret,
    "AWS::S3::Bucket": create_bucket,
    "AWS::SES::ConfigurationSet": create_ses_configuration_set,
    "AWS::SES::EmailIdentity": create_ses_email_identity,
}


def placeholder(logical_id: str, resource_type: str | None, attribute: str | None) -> str:
    """``Ref``/``GetAtt`` of a resource the local stack does not emulate (log groups, roles,
    alarms...): a plausible, stable value, so a template that mentions one still starts."""
    if attribute is None:
        return logical_id
    if attribute == "Arn":
        service = resource_type.split("::")[1].lower() if resource_type and resource_type.count("::") >= 2 else "local"
        return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{logical_id}"
    return f"{logical_id}.{attribute}"
