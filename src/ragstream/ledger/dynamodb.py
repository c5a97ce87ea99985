"""The cloud ledger: one DynamoDB item per source, written with a condition on the sequencer."""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ServiceUnavailable, Throttled
from ..model import DocumentRecord, Status
from ..retry import Backoff, retrying

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

__all__ = ["SORT_ATTRIBUTE", "STATUS_INDEX", "DynamoDBLedger", "sort_key", "table_definition"]

STATUS_INDEX = "status-index"
#: The GSI's sort attribute: the source cut to DynamoDB's 1,024-byte limit on sort keys. A source
#: itself can be longer ("s3://" + a 63-byte bucket + a 1,024-byte key), so it cannot be the sort key.
SORT_ATTRIBUTE = "source_sort"
SORT_KEY_MAX_BYTES = 1024

_THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
    }
)
_SERVICE_CODES = frozenset({"InternalServerError", "ServiceUnavailable", "InternalFailure"})
_CONFIG_CODES = frozenset(
    {"ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException"}
)
#: BatchGetItem's unprocessed keys are asked again after 50 ms, doubling to 2 s, with jitter.
_UNPROCESSED_BACKOFF = Backoff(base=0.05, cap=2.0)


class _KeysLeft(Exception):
    """BatchGetItem answered, but left ``count`` keys unprocessed (a success to botocore)."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} keys unprocessed")
        self.count = count


def table_definition(table_name: str) -> dict[str, Any]:
    """Keyword arguments of ``CreateTable`` for the ledger; template.yaml mirrors them.

    Partition key ``source`` (S); GSI ``status-index`` (partition ``status``, sort ``source_sort``,
    all attributes projected); on-demand billing.
    """
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "source", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
            {"AttributeName": SORT_ATTRIBUTE, "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "source", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": STATUS_INDEX,
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": SORT_ATTRIBUTE, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


def sort_key(source: str) -> str:
    """``source`` cut to at most 1,024 bytes of UTF-8, on a character boundary."""
    data = source.encode()
    if len(data) <= SORT_KEY_MAX_BYTES:
        return source
    return data[:SORT_KEY_MAX_BYTES].decode(errors="ignore")


def _to_item(record: DocumentRecord) -> dict[str, Any]:
    """The record as a DynamoDB item: None left out, datetimes ISO, floats as Decimal (type N)."""
    from boto3.dynamodb.types import TypeSerializer

    plain = json.loads(record.model_dump_json(exclude_none=True), parse_float=Decimal)
    serializer = TypeSerializer()
    item = {name: serializer.serialize(value) for name, value in plain.items()}
    item[SORT_ATTRIBUTE] = {"S": sort_key(record.source)}
    return item


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to int or float, recursively."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent  # 0 or more: written as an integer ("3", not "3.0")
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _from_item(item: dict[str, Any]) -> DocumentRecord:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    fields = {k: _plain(deserializer.deserialize(v)) for k, v in item.items() if k != SORT_ATTRIBUTE}
    return DocumentRecord.model_validate(fields)


def _encode_cursor(key: dict[str, Any]) -> str:
    """LastEvaluatedKey (only string attributes in this table) as an opaque URL-safe string."""
    plain = {name: value["S"] for name, value in key.items()}
    text = json.dumps(plain, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(plain, dict) or not all(isinstance(v, str) for v in plain.values()):
            raise ValueError("not a key")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(
            f"invalid ledger cursor {cursor!r}: pass back the cursor of the previous page"
        ) from exc
    return {name: {"S": value} for name, value in plain.items()}


def _translate(exc: ClientError, table_name: str) -> Exception:
    """A botocore ClientError (after botocore's own retries) as one of ours; unknown ones unchanged."""
    error = exc.response.get("Error", {})
    code = error.get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _THROTTLING_CODES:
        return Throttled(f"DynamoDB throttled ledger table {table_name!r} past retries ({code})")
    if code in _SERVICE_CODES or status >= 500:
        return ServiceUnavailable(
            f"DynamoDB failed on ledger table {table_name!r} past retries ({code or status})"
        )
    if code in _CONFIG_CODES:
        return ConfigError(
            f"cannot use DynamoDB table {table_name!r} ({code}): check RAGSTREAM_LEDGER_TABLE, the region "
            "and the function's IAM permissions"
        )
    unknown: Exception = exc
    return unknown


class DynamoDBLedger:
    """The ledger in a DynamoDB table (see :func:`table_definition`).

    ``put`` is one conditional ``PutItem``, so it is atomic against any other writer. The rule
    is the same as :class:`~ragstream.ledger.sqlite.SQLiteLedger`'s: written when no item exists,
    when the stored item has no sequencer, or when the incoming sequencer is not below the stored
    one; a record without a sequencer is refused once the stored one has a sequencer.

    ``list`` with a status queries the ``status-index`` GSI and returns records in source order
    (sources longer than 1,024 bytes that share their first 1,024 bytes come in any order among
    themselves). Without a status it scans the table: records come in DynamoDB's hash order
    (sorted within a page only), and a page may hold fewer than ``limit`` records while the cursor
    is not None.
    """

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The boto3 DynamoDB client, created on first use (no network call at construction)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    self._client = boto3.client(
                        "dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 5})
                    )
        return self._client

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """A call on the ledger table (its name added), with botocore's errors translated into ours."""
        return self._call_batch(operation, TableName=self.table_name, **kwargs)

    def _call_batch(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """A call as given (batch calls name their table inside the request), errors translated."""
        from botocore.exceptions import ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        try:
            result: dict[str, Any] = getattr(self.client, operation)(**kwargs)
        except ClientError as exc:
            translated = _translate(exc, self.table_name)
            if translated is exc:
                raise
            raise translated from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise ServiceUnavailable(
                f"DynamoDB unreachable for ledger table {self.table_name!r}: {type(exc).__name__}"
            ) from exc
        return result

    def get(self, source: str) -> DocumentRecord | None:
        """The record of one source (strongly consistent read), or None."""
        result = self._call("get_item", Key={"source": {"S": source}}, ConsistentRead=True)
        item = result.get("Item")
        return _from_item(item) if item else None

    def put(self, record: DocumentRecord) -> bool:
        """Write ``record`` unless the stored one has a newer sequencer; False when refused."""
        from botocore.exceptions import ClientError

        # "source" is a DynamoDB reserved word: expressions name attributes through placeholders.
        condition = "attribute_not_exists(#s) OR attribute_not_exists(#seq)"
        names = {"#s": "source", "#seq": "sequencer"}
        values: dict[str, Any] = {}
        if record.sequencer is not None:
            condition += " OR #seq <= :seq"
            values[":seq"] = {"S": record.sequencer}
        kwargs: dict[str, Any] = {
            "Item": _to_item(record),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self._call("put_item", **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def list(
        self,
        *,
        status: Status | None = None,
        prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[DocumentRecord], str | None]:
        """Records filtered by status and source prefix, one page at a time (see the class docstring)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        start = _decode_cursor(cursor) if cursor else None
        records: list[DocumentRecord] = []
        while True:
            kwargs: dict[str, Any] = {"Limit": limit - len(records), "ConsistentRead": status is None}
            values: dict[str, Any] = {}
            if start:
                kwargs["ExclusiveStartKey"] = start
            if status is not None:
                kwargs.pop("ConsistentRead")  # GSIs only offer eventually consistent reads
                kwargs["IndexName"] = STATUS_INDEX
                key_condition = "#st = :st"
                names = {"#st": "status"}  # DynamoDB rejects names an expression does not use
                values[":st"] = {"S": Status(status).value}
                if prefix:
                    key_condition += " AND begins_with(#ss, :ps)"
                    names["#ss"] = SORT_ATTRIBUTE
                    values[":ps"] = {"S": sort_key(prefix)}
                    if sort_key(prefix) != prefix:  # the cut sort key cannot tell: filter on source
                        kwargs["FilterExpression"] = "begins_with(#s, :p)"
                        names["#s"] = "source"
                        values[":p"] = {"S": prefix}
                kwargs["KeyConditionExpression"] = key_condition
                kwargs["ExpressionAttributeNames"] = names
                kwargs["ExpressionAttributeValues"] = values
                result = self._call("query", **kwargs)
            else:
                if prefix:
                    kwargs["FilterExpression"] = "begins_with(#s, :p)"
                    kwargs["ExpressionAttributeNames"] = {"#s": "source"}
                    kwargs["ExpressionAttributeValues"] = {":p": {"S": prefix}}
                result = self._call("scan", **kwargs)
            records.extend(_from_item(item) for item in result.get("Items", []))
            start = result.get("LastEvaluatedKey")
            if not start or len(records) >= limit:
                break
        records.sort(key=lambda r: r.source)  # keeps the index order: sort_key() is monotonic
        return records, _encode_cursor(start) if start else None

    def get_many(self, sources: Sequence[str]) -> dict[str, DocumentRecord]:
        """The records of many sources: BatchGetItem of 100 keys, strongly consistent, unprocessed
        keys asked again with backoff."""
        found: dict[str, DocumentRecord] = {}
        unique = list(dict.fromkeys(sources))
        for i in range(0, len(unique), 100):
            keys: list[dict[str, Any]] = [{"source": {"S": s}} for s in unique[i : i + 100]]

            def read() -> None:
                nonlocal keys
                request = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
                result = self._call_batch("batch_get_item", RequestItems=request)
                for item in result.get("Responses", {}).get(self.table_name, []):
                    rec = _from_item(item)
                    found[rec.source] = rec
                keys = result.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                if keys:
                    raise _KeysLeft(len(keys))

            try:
                retrying(read, attempts=8, retry_on=_KeysLeft, backoff=_UNPROCESSED_BACKOFF)
            except _KeysLeft as left:
                raise Throttled(
                    f"DynamoDB left {left.count} keys of ledger table {self.table_name!r} unread"
                ) from None
        return found

    def mark(self, sources: Iterable[str], run: str) -> int:
        """Stamp ``seen_run`` with one conditional UpdateItem per existing source."""
        from botocore.exceptions import ClientError

        stamped = 0
        for source in dict.fromkeys(sources):
            try:
                self._call(
                    "update_item",
                    Key={"source": {"S": source}},
                    UpdateExpression="SET #run = :run",
                    ConditionExpression="attribute_exists(#s)",
                    ExpressionAttributeNames={"#run": "seen_run", "#s": "source"},
                    ExpressionAttributeValues={":run": {"S": run}},
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    continue
                raise
            stamped += 1
        return stamped

    def close(self) -> None:
        """Close the client this ledger created (an injected client belongs to the caller)."""
        if not self._owns_client:
            return
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
