"""``ragstream dev``: the AWS flow on one machine, through the very Lambda handlers that run in AWS.

moto's server stands in for S3 and SQS (and DynamoDB, SSM, Secrets Manager when configured) on one
local port. The bucket notifies the queue on ObjectCreated and ObjectRemoved, as template.yaml wires
it; a loop receives up to 10 messages at a time, hands them to ``functions/ingest/app.py`` as the
Lambda SQS event, deletes what succeeded and leaves the batch item failures to come back after a
short visibility timeout (and to reach the dead-letter queue after the last try). The query API is
``functions/query/app.py``'s app behind :func:`ragstream.server.make_server`.

Both handlers are loaded as Lambda loads them (from the repository's ``functions/``, after the
environment is set), so they build their clients from settings at import. Embedded Qdrant admits one
client per folder, which :func:`ragstream.index.open_index` shares within a process; ingest batches
and API requests take turns on it (requests at once, an ingest batch alone).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shlex
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from .errors import ConfigError
from .server import LocalContext

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["DevStack", "run_dev"]

log = logging.getLogger(__name__)

#: The functions/ folder of a source checkout (src/ragstream/dev.py -> the repository root).
FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
#: Seconds a received message stays invisible: a batch item failure comes back this soon.
VISIBILITY_TIMEOUT = 10
#: Tries before a message moves to the dead-letter queue (the template's default).
MAX_RECEIVE_COUNT = 5
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def settings_env(settings: Settings) -> dict[str, str]:
    """The explicitly set fields of ``settings`` as ``RAGSTREAM_*`` variables (for the handlers' own
    ``get_settings()``), the state folder always, as an absolute path."""
    env: dict[str, str] = {}
    for name in sorted(settings.model_fields_set | {"home"}):
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, Path):
            value = str(value.expanduser().resolve())
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | dict):
            value = json.dumps(value)
        env[f"RAGSTREAM_{name.upper()}"] = str(value)
    return env


def load_handler(name: str, functions_dir: Path = FUNCTIONS_DIR) -> ModuleType:
    """Import ``functions/<name>/app.py`` as Lambda does: a fresh module, run once."""
    path = functions_dir / name / "app.py"
    if not path.is_file():
        raise ConfigError(
            f"ragstream dev runs the Lambda handlers of a source checkout, and {path} is missing: "
            "run it from a clone of the repository (pip install -e '.[local]')"
        )
    spec = importlib.util.spec_from_file_location(f"ragstream_dev_{name}_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


class DevStack:
    """moto's S3 + SQS, the bucket wired to the queue, the ingest loop and the query API, in one process."""

    def __init__(
        self,
        settings: Settings,
        *,
        host: str = "127.0.0.1",
        s3_port: int = 4566,
        api_port: int = 8080,
        bucket: str = "ragstream-docs",
        queue: str = "ragstream-ingest",
        functions_dir: Path = FUNCTIONS_DIR,
    ) -> None:
        self.settings = settings
        self.host = host
        self.bucket = bucket
        self.queue_name = queue
        self.functions_dir = functions_dir
        self._s3_port = s3_port
        self._api_port = api_port
        self._moto: Any = None
        self._server: Any = None
        self._env: Any = None
        self._stop = threading.Event()
        self.ingest: ModuleType | None = None
        self.query: ModuleType | None = None
        self.queue_url = ""
        self.queue_arn = ""
        self.dlq_url = ""

    # -- addresses ------------------------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        """The S3 / SQS endpoint (moto)."""
        assert self._moto is not None, "start() first"
        _, port = self._moto.get_host_and_port()
        return f"http://{_client_host(self.host)}:{port}"

    @property
    def api_url(self) -> str:
        """The query API."""
        assert self._server is not None, "start() first"
        return f"http://{_client_host(self.host)}:{self._server.server_address[1]}"

    @property
    def region(self) -> str:
        return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    # -- life cycle -----------------------------------------------------------------------------------
    def start(self) -> DevStack:
        """Start moto, create the bucket, queue and DLQ, load both handlers, serve the API."""
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise ConfigError(
                "`ragstream dev` needs moto's server, which the `local` extra installs: "
                "scripts/setup local (or: pip install 'moto[server,s3,sqs]')"
            ) from None

        self._moto = ThreadedMotoServer(ip_address=self.host, port=self._s3_port, verbose=False)
        self._moto.start()
        env = {
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            **settings_env(self.settings),
            "RAGSTREAM_BUCKET": self.bucket,
        }
        if "ocr" not in self.settings.model_fields_set and "RAGSTREAM_OCR" not in os.environ:
            env["RAGSTREAM_OCR"] = "tesseract"  # moto's Textract returns canned text; OCR here, offline
        self._env = _environ(env)
        self._env.__enter__()
        try:
            self._create_resources()
            # both handlers open the same embedded index (one client per folder and process)
            self.ingest = load_handler("ingest", self.functions_dir)
            self.query = load_handler("query", self.functions_dir)
            from .server import make_server

            self._server = make_server(self.query.app, self.host, self._api_port)
            threading.Thread(target=self._server.serve_forever, name="ragstream-api", daemon=True).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the loop, the API and moto; restore the environment."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        pipeline = getattr(self.ingest, "pipeline", None)
        for part in (getattr(pipeline, "index", None), getattr(pipeline, "ledger", None)):
            if part is not None:  # the shared embedded index releases its folder lock
                try:
                    part.close()
                except Exception:  # closing is best effort
                    log.debug("closing %r failed", part, exc_info=True)
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._env is not None:
            self._env.__exit__(None, None, None)
            self._env = None

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the queue loop -------------------------------------------------------------------------------
    def run_forever(self) -> None:
        """Feed queue batches to the ingest handler until :meth:`stop` (or Ctrl-C)."""
        while not self._stop.is_set():
            self.poll(wait_seconds=1)

    def poll(self, wait_seconds: int = 0) -> dict[str, Any] | None:
        """Receive up to 10 messages, invoke the ingest handler on them as Lambda's SQS poller does,
        delete those that succeeded. Returns the handler's response (None when the queue was empty)."""
        sqs = self._client("sqs")
        received = sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return None
        event = {"Records": [self._record(m) for m in received]}
        assert self.ingest is not None and self._server is not None
        try:
            with self._server.lock.exclusive():  # one index: an ingest batch waits out the requests
                response: dict[str, Any] = self.ingest.lambda_handler(
                    event, LocalContext("ragstream-ingest-local")
                )
        except Exception as exc:  # the whole batch failed: SQS redelivers all of it
            log.warning("ingest batch of %d failed: %s", len(received), exc)
            return {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in received]}
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        done = [m for m in received if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return response

    def drain(self, max_polls: int = 100) -> int:
        """Poll until the queue is empty (visible messages only); the number of batches handled."""
        batches = 0
        while batches < max_polls and self.poll(wait_seconds=0) is not None:
            batches += 1
        return batches

    def reconcile(self) -> dict[str, Any]:
        """What the schedule does in AWS: ``{"action": "reconcile"}`` to the ingest handler."""
        assert self.ingest is not None and self._server is not None
        with self._server.lock.exclusive():
            result: dict[str, Any] = self.ingest.lambda_handler(
                {"action": "reconcile"}, LocalContext("ragstream-ingest-local")
            )
        return result

    # -- internals ------------------------------------------------------------------------------------
    def _client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region)

    def _record(self, message: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": dict(message.get("MessageAttributes", {})),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }

    def _create_resources(self) -> None:
        sqs, s3 = self._client("sqs"), self._client("s3")
        self.dlq_url = sqs.create_queue(QueueName=f"{self.queue_name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.queue_url = sqs.create_queue(
            QueueName=self.queue_name,
            Attributes={
                "VisibilityTimeout": str(VISIBILITY_TIMEOUT),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
                ),
            },
        )["QueueUrl"]
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=self.bucket)
        else:
            s3.create_bucket(
                Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": self.region}
            )
        s3.put_bucket_notification_configuration(
            Bucket=self.bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {"QueueArn": self.queue_arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
                ]
            },
        )
        table = os.environ.get("RAGSTREAM_LEDGER_TABLE")
        if table:  # a DynamoDB ledger was asked for: it lives in moto too
            from .ledger.dynamodb import table_definition

            ddb = self._client("dynamodb")
            if table not in ddb.list_tables()["TableNames"]:
                ddb.create_table(**table_definition(table))

    def instructions(self) -> str:
        """What to run against the stack: aws cli and curl lines."""
        e, b, api = self.endpoint_url, self.bucket, self.api_url
        key_header = ""
        if self.query is not None and not getattr(self.query.app, "is_open", True):
            key_header = ' -H "x-api-key: $RAGSTREAM_API_KEY"'
        creds = " ".join(f"{k}={v}" for k, v in FAKE_CREDENTIALS.items() if k != "AWS_SESSION_TOKEN")
        lines = [
            f"ragstream dev: S3 + SQS (moto) on {e}, query API on {api} (web page: {api}/)",
            f"  bucket s3://{b} -> queue {self.queue_name} (DLQ {self.queue_name}-dlq after "
            f"{MAX_RECEIVE_COUNT} tries) -> functions/ingest/app.py; state in {os.environ['RAGSTREAM_HOME']}",
            "",
            "In another shell:",
            f"  export {creds} AWS_DEFAULT_REGION={self.region}",
            f"  aws --endpoint-url {e} s3 cp report.pdf s3://{b}/reports/report.pdf",
            f"  aws --endpoint-url {e} s3 sync ./docs s3://{b}/docs/",
            f"  aws --endpoint-url {e} s3 rm s3://{b}/reports/report.pdf",
            f"  curl -s {api}/documents{key_header}",
            f"  curl -s {api}/search{key_header} -H 'content-type: application/json' -d "
            + shlex.quote(json.dumps({"query": "revenue in Q3", "top_k": 3})),
            f"  curl -s {api}/ask{key_header} -H 'content-type: application/json' -d "
            + shlex.quote(json.dumps({"question": "What was the revenue in Q3?"})),
            "",
            "Ctrl-C to stop.",
        ]
        return "\n".join(lines)


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def run_dev(
    settings: Settings,
    host: str = "127.0.0.1",
    s3_port: int = 4566,
    api_port: int = 8080,
    bucket: str = "ragstream-docs",
) -> None:
    """Run the AWS flow on this machine until Ctrl-C."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log: one line per poll
    stack = DevStack(settings, host=host, s3_port=s3_port, api_port=api_port, bucket=bucket)
    stack.start()
    try:
        print(stack.instructions(), file=sys.stderr, flush=True)
        stack.run_forever()
    except KeyboardInterrupt:
        print("\nragstream dev: stopping", file=sys.stderr)
    finally:
        stack.stop()
