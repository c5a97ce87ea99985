"""``ragstream dev`` end to end: objects put, overwritten and deleted through boto3 against moto's S3
reach the real ingest handler through the queue; the index follows; the real query handler answers
over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from ragstream.config import Settings
from ragstream.dev import DevStack
from ragstream.homelock import FolderLock, holds_embedded_index
from ragstream.index import open_index

BUCKET = "ragstream-dev-test"


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    home = tmp_path_factory.mktemp("dev-home")
    settings = Settings(home=home, embedding_provider="local", llm="extractive")
    with DevStack(settings, s3_port=0, api_port=0, bucket=BUCKET) as dev:
        yield dev


@pytest.fixture
def s3(stack: DevStack) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=stack.endpoint_url,
        region_name=stack.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _documents(stack: DevStack) -> dict[str, dict[str, Any]]:
    status, body = _http("GET", f"{stack.api_url}/documents")
    assert status == 200, body
    return {d["source"]: d for d in body["documents"]}


def _search(stack: DevStack, query: str) -> list[dict[str, Any]]:
    status, body = _http("POST", f"{stack.api_url}/search", {"query": query, "top_k": 5})
    assert status == 200, body
    hits: list[dict[str, Any]] = body["hits"]
    return hits


def test_put_overwrite_delete_follow_the_bucket(stack: DevStack, s3: Any) -> None:
    source = f"s3://{BUCKET}/handbook/leave policy.md"
    # the notification configuration sent s3:TestEvent: acknowledged, nothing indexed
    stack.drain()

    # GIVEN a document put into the bucket
    s3.put_object(
        Bucket=BUCKET,
        Key="handbook/leave policy.md",
        Body=b"# Annual leave\n\nEmployees receive 25 days of paid annual leave per calendar year.\n",
        Metadata={"team": "people"},
    )
    # WHEN the queue is fed to the ingest handler
    assert stack.drain() >= 1
    # THEN the ledger and the index have it, and the API finds it
    docs = _documents(stack)
    assert docs[source]["status"] == "indexed"
    first_version = docs[source]["version"]
    hits = _search(stack, "how many days of annual leave")
    assert hits and hits[0]["source"] == source
    assert "25 days" in hits[0]["text"]

    # GIVEN the same key overwritten with other text
    s3.put_object(
        Bucket=BUCKET,
        Key="handbook/leave policy.md",
        Body=b"# Annual leave\n\nEmployees receive 30 days of paid annual leave, from 2025 on.\n",
    )
    stack.drain()
    # THEN only the new version answers
    docs = _documents(stack)
    assert docs[source]["status"] == "indexed" and docs[source]["version"] != first_version
    texts = [h["text"] for h in _search(stack, "annual leave days") if h["source"] == source]
    assert texts and all("30 days" in t for t in texts) and not any("25 days" in t for t in texts)

    # GIVEN the object deleted
    s3.delete_object(Bucket=BUCKET, Key="handbook/leave policy.md")
    stack.drain()
    # THEN it is gone from the index and marked deleted in the ledger
    assert not [h for h in _search(stack, "annual leave days") if h["source"] == source]
    status, body = _http("GET", f"{stack.api_url}/documents?status=deleted")
    assert status == 200 and source in {d["source"] for d in body["documents"]}


def test_a_broken_document_fails_once_and_others_index(stack: DevStack, s3: Any) -> None:
    # GIVEN a corrupt PDF and a good text file in one batch
    s3.put_object(Bucket=BUCKET, Key="broken.pdf", Body=b"%PDF-1.7\nnot really a pdf")
    s3.put_object(Bucket=BUCKET, Key="notes/qdrant.txt", Body=b"Qdrant stores the vectors of every chunk.")
    stack.drain()
    # THEN the broken one is recorded as failed (permanent: acknowledged), the other indexed
    docs = _documents(stack)
    assert docs[f"s3://{BUCKET}/broken.pdf"]["status"] == "failed"
    assert docs[f"s3://{BUCKET}/notes/qdrant.txt"]["status"] == "indexed"
    sqs = boto3.client("sqs", endpoint_url=stack.endpoint_url, region_name=stack.region)
    attrs = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_the_loop_runs_in_the_background_and_health_answers(stack: DevStack, s3: Any) -> None:
    import threading

    # GIVEN the loop that `ragstream dev` runs
    loop = threading.Thread(target=stack.run_forever, daemon=True)
    loop.start()
    try:
        # WHEN an object is put (as `aws s3 cp` does)
        s3.put_object(Bucket=BUCKET, Key="faq.md", Body=b"# FAQ\n\nThe office opens at nine o'clock.")
        # THEN it is indexed within seconds
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _documents(stack).get(f"s3://{BUCKET}/faq.md", {}).get("status") == "indexed":
                break
            time.sleep(0.2)
        else:
            pytest.fail("faq.md was not indexed within 20 s")
    finally:
        stack._stop.set()
        loop.join(timeout=10)
    status, body = _http("GET", f"{stack.api_url}/health")
    assert status == 200, body
    status, body = _http("POST", f"{stack.api_url}/ask", {"question": "When does the office open?"})
    assert status == 200, body
    assert "nine" in json.dumps(body)


def test_instructions_name_the_endpoints(stack: DevStack) -> None:
    text = stack.instructions()
    assert f"--endpoint-url {stack.endpoint_url} s3 cp" in text
    assert f"{stack.api_url}/search" in text
    assert Path(stack.settings.home).resolve().as_posix() in text


def test_the_web_page_is_served(stack: DevStack) -> None:
    assert f"web page: {stack.api_url}/" in stack.instructions()
    with urllib.request.urlopen(f"{stack.api_url}/", timeout=30) as response:
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.read().startswith(b"<!doctype html>")


# -- a server store given by URL (issue 12): no folder lock, the flow runs against the server ------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_dev(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str, str]:
    s3_port, api_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ragstream.cli",
            "dev",
            "--home",
            str(home),
            "--s3-port",
            str(s3_port),
            "--port",
            str(api_port),
            "--bucket",
            BUCKET,
        ],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, f"http://127.0.0.1:{s3_port}", f"http://127.0.0.1:{api_port}"


def _wait_healthy(proc: subprocess.Popen[str], api: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"ragstream dev exited {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}"
            )
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail("ragstream dev did not answer /health")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)  # Ctrl-C: the stack stops and restores the environment
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    return out


@pytest.mark.parametrize(
    ("store", "url"),
    [
        ("chroma", "http://127.0.0.1:8000"),
        ("milvus", "http://127.0.0.1:19530"),
        ("qdrant", "http://127.0.0.1:6333"),
    ],
)
def test_a_store_given_by_url_needs_no_folder_lock(tmp_path: Path, store: str, url: str) -> None:
    # RAGSTREAM_INDEX_URL names the server of every server store, Qdrant's too (the deprecated
    # RAGSTREAM_QDRANT_URL first)
    settings = Settings(home=tmp_path, index=store, index_url=url)
    assert settings.index_location == url
    assert settings.index_identity.startswith(f"{store}:{url}#")
    assert not holds_embedded_index(settings)
    assert holds_embedded_index(Settings(home=tmp_path, index=store))  # the embedded one does
    if store == "qdrant":  # qdrant-client's remote client, no local folder, no call made yet
        import socket

        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen()
            server.settimeout(0.5)
            index = open_index(
                settings.model_copy(update={"index_url": f"http://127.0.0.1:{server.getsockname()[1]}"})
            )
            try:
                assert index.capabilities.embedded is False
                with pytest.raises(TimeoutError):  # nobody connected (no version check at construction)
                    server.accept()[0].close()
            finally:
                index.close()
        assert not (tmp_path / "qdrant").exists()
        with pytest.deprecated_call():
            assert Settings(
                home=tmp_path, index=store, index_url=url, qdrant_url="https://q:6333"
            ).index_location == ("https://q:6333")


def test_ragstream_dev_runs_on_a_chroma_server_while_the_home_is_held(
    tmp_path: Path, chroma_server: str
) -> None:
    env = {
        "RAGSTREAM_INDEX": "chroma",
        "RAGSTREAM_INDEX_URL": chroma_server,
        "RAGSTREAM_COLLECTION": f"dev_{uuid.uuid4().hex[:8]}",
        "RAGSTREAM_EMBEDDING_PROVIDER": "local",
        "RAGSTREAM_LLM": "extractive",
    }
    # GIVEN another process's command holding the state folder (as `ragstream serve` on it would)
    lock = FolderLock(tmp_path, "ragstream serve").acquire()
    try:
        # WHEN `ragstream dev` starts on a Chroma server
        proc, s3_url, api = _start_dev(tmp_path, env)
        try:
            _wait_healthy(proc, api)
            # THEN it runs (a server store takes no folder lock), and an object put reaches the server
            s3 = boto3.client(
                "s3",
                endpoint_url=s3_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            s3.put_object(
                Bucket=BUCKET, Key="handbook/leave.md", Body=b"# Leave\n\nEmployees receive 25 days of leave."
            )
            deadline = time.monotonic() + 60
            hits: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not hits:
                status, body = _http("POST", f"{api}/search", {"query": "days of leave", "top_k": 3})
                assert status == 200, body
                hits = body["hits"]
                time.sleep(0.3)
            assert hits and hits[0]["source"] == f"s3://{BUCKET}/handbook/leave.md"
        finally:
            out = _stop(proc)
        assert "HomeInUse" not in out and "is in use" not in out
        # AND the points are on the Chroma server, where another client sees them
        index = open_index(
            Settings(
                home=tmp_path / "other",
                index="chroma",
                index_url=chroma_server,
                collection=env["RAGSTREAM_COLLECTION"],
            )
        )
        try:
            assert index.count(source=f"s3://{BUCKET}/handbook/leave.md") >= 1
        finally:
            index.close()

        # WHEN `ragstream dev` starts on the embedded store of that folder instead
        proc, _, _ = _start_dev(tmp_path, {**env, "RAGSTREAM_INDEX": "qdrant", "RAGSTREAM_INDEX_URL": ""})
        out, _ = proc.communicate(timeout=120)
        # THEN it refuses at once, naming the holder
        assert proc.returncode == 2 and "is in use" in out and "ragstream serve" in out, out
    finally:
        lock.release()
