"""Images and Textract: sync calls, backoff on throttling, typed failures, limits, reading order."""

from __future__ import annotations

import io
import re
import shutil
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from PIL import Image, ImageDraw, ImageFont

from ragstream.config import Settings
from ragstream.errors import CorruptDocument, ServiceUnavailable, Throttled, TooLarge
from ragstream.extract import extract
from ragstream.extract import textract as textract_mod
from ragstream.extract.ocr import Line, order_lines
from ragstream.extract.textract import TextractOcr, blocks_to_elements
from ragstream.model import SourceRef


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(textract_mod, "_sleep", slept.append)
    return slept


def client() -> Any:
    return boto3.client("textract", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


def picture(lines: list[str], fmt: str = "PNG", frames: int = 1) -> bytes:
    images = []
    for f in range(frames):
        image = Image.new("L", (1400, 500), 255)
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(lines):
            draw.text((60, 60 + i * 110), f"{line}{' ' + str(f + 1) if frames > 1 else ''}", fill=0,
                      font=ImageFont.load_default(size=64))  # fmt: skip
        images.append(image)
    buffer = io.BytesIO()
    images[0].save(buffer, format=fmt, save_all=frames > 1, append_images=images[1:])
    return buffer.getvalue()


def line(text: str, left: float, top: float, width: float = 0.3, page: int | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "BlockType": "LINE",
        "Text": text,
        "Geometry": {"BoundingBox": {"Left": left, "Top": top, "Width": width, "Height": 0.02}},
    }
    if page:
        block["Page"] = page
    return block


REF = SourceRef(source="s3://b/images/scan.png", key="images/scan.png", bucket="b")
SYNC_RESPONSE = {
    "DocumentMetadata": {"Pages": 1},
    "Blocks": [
        {"BlockType": "PAGE", "Id": "p"},
        line("Receipt", 0.1, 0.05, 0.2),
        {"BlockType": "WORD", "Text": "Receipt", "Geometry": {"BoundingBox": {}}},
        line("Coffee 3.50", 0.1, 0.10),
        {"BlockType": "WORD", "Text": "Coffee", "Geometry": {"BoundingBox": {}}},
    ],
}


def test_image_goes_through_detect_document_text_with_its_bytes() -> None:
    data = picture(["Receipt"])
    textract = client()
    with Stubber(textract) as stubber:
        stubber.add_response("detect_document_text", SYNC_RESPONSE, {"Document": {"Bytes": data}})
        result = extract(data, REF, Settings(), textract=textract)
        stubber.assert_no_pending_responses()
    assert (result.engine, result.content_type, result.pages, result.ocr_pages) == (
        "textract",
        "image/png",
        1,
        1,
    )
    assert [(e.text, e.page) for e in result.elements] == [("Receipt", 1), ("Coffee 3.50", 1)]


def test_throttling_is_retried_with_backoff_then_succeeds(no_sleep: list[float]) -> None:
    textract = client()
    with Stubber(textract) as stubber:
        stubber.add_client_error("detect_document_text", "ThrottlingException", http_status_code=400)
        stubber.add_client_error("detect_document_text", "ProvisionedThroughputExceededException")
        stubber.add_response("detect_document_text", SYNC_RESPONSE)
        result = extract(picture(["x"]), REF, Settings(), textract=textract)
        stubber.assert_no_pending_responses()
    assert result.elements[0].text.startswith("Receipt")
    assert len(no_sleep) == 2 and no_sleep[1] > no_sleep[0] * 0.9  # exponential, with jitter


def test_persistent_throttling_is_transient() -> None:
    textract = client()
    with Stubber(textract) as stubber:
        for _ in range(6):
            stubber.add_client_error("detect_document_text", "LimitExceededException")
        with pytest.raises(Throttled) as caught:
            extract(picture(["x"]), REF, Settings(), textract=textract)
    assert caught.value.retryable


def test_server_errors_become_service_unavailable_and_bad_documents_corrupt() -> None:
    ocr = TextractOcr(client(), max_attempts=2)
    with Stubber(ocr.client) as stubber:
        stubber.add_client_error("detect_document_text", "InternalServerError", http_status_code=500)
        stubber.add_client_error("detect_document_text", "InternalServerError", http_status_code=500)
        with pytest.raises(ServiceUnavailable):
            ocr.detect_bytes(b"\x89PNG....")
        stubber.add_client_error("detect_document_text", "BadDocumentException", http_status_code=400)
        with pytest.raises(CorruptDocument, match="damaged"):
            ocr.detect_bytes(b"\x89PNG....")


def test_failed_async_job_is_permanent() -> None:
    ocr = TextractOcr(client())
    with Stubber(ocr.client) as stubber:
        stubber.add_response("start_document_text_detection", {"JobId": "j"})
        stubber.add_response(
            "get_document_text_detection", {"JobStatus": "FAILED", "StatusMessage": "Unsupported document"}
        )
        with pytest.raises(CorruptDocument, match="Unsupported document"):
            ocr.detect_s3("bucket", "k.pdf", size=100, pages=2, token="abc")


def test_textract_limits_are_clear_permanent_errors() -> None:
    ocr = TextractOcr(object())
    with pytest.raises(TooLarge, match="10 MB"):
        ocr.detect_bytes(b"0" * (10 * 1024 * 1024 + 1))
    with pytest.raises(TooLarge, match="3000"):
        ocr.detect_s3("bucket", "k.pdf", size=1000, pages=3001, token="x")
    with pytest.raises(TooLarge, match="500 MB"):
        ocr.detect_s3("b", "k.pdf", size=501 * 1024 * 1024, pages=2, token="x")


def test_multiframe_tiff_in_s3_uses_async_job() -> None:
    data = picture(["Frame"], fmt="TIFF", frames=2)
    ref = SourceRef(source="s3://bucket/scan.tif", key="scan.tif", bucket="bucket")
    textract = client()
    with Stubber(textract) as stubber:
        stubber.add_response("start_document_text_detection", {"JobId": "t"})
        stubber.add_response(
            "get_document_text_detection",
            {
                "JobStatus": "SUCCEEDED",
                "Blocks": [line("one", 0.1, 0.1, page=1), line("two", 0.1, 0.1, page=2)],
            },
        )
        result = extract(data, ref, Settings(), textract=textract)
    assert (result.pages, result.ocr_pages) == (2, 2)
    assert [(e.page, e.text) for e in result.elements] == [(1, "one"), (2, "two")]


def test_two_columns_are_read_column_by_column() -> None:
    blocks = [line("Heading across the page", 0.1, 0.05, 0.8)]
    for i in range(4):
        blocks.append(line(f"left {i}", 0.05, 0.2 + i * 0.025, 0.4))
        blocks.append(line(f"right {i}", 0.55, 0.2 + i * 0.025, 0.4))
    elements = blocks_to_elements(blocks)
    text = " | ".join(e.text for e in elements)
    assert text.index("left 3") < text.index("right 0")
    assert order_lines([Line("a", 0, 0.1, 1, 0.02)])[0].text == "a"


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed")
def test_local_image_uses_tesseract_for_real() -> None:
    data = picture(["HELLO RAGSTREAM", "SECOND LINE 42"], fmt="JPEG")
    result = extract(data, SourceRef(source="file:///tmp/x.jpg", key="x.jpg"), Settings())
    assert (result.engine, result.content_type, result.ocr_pages) == ("tesseract", "image/jpeg", 1)
    text = " ".join(e.text for e in result.elements)
    assert "RAGSTREAM" in text and "42" in text
    assert all(e.page == 1 for e in result.elements)


def _record_tokens(textract: Any) -> list[str]:
    tokens: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        tokens.append(params["ClientRequestToken"])

    textract.meta.events.register("provide-client-params.textract.StartDocumentTextDetection", record)
    return tokens


def test_the_same_scan_under_two_keys_starts_two_jobs_with_their_own_tokens() -> None:
    # GIVEN the same two-page scan uploaded under two keys
    data = picture(["Frame"], fmt="TIFF", frames=2)
    refs = [
        SourceRef(source=f"s3://bucket/{k}", key=k, bucket="bucket", etag="e1") for k in ("a.tif", "b.tif")
    ]
    textract = client()
    tokens = _record_tokens(textract)
    done = {"JobStatus": "SUCCEEDED", "Blocks": [line("one", 0.1, 0.1, page=1)]}
    with Stubber(textract) as stubber:
        for job in ("ja", "jb"):
            stubber.add_response("start_document_text_detection", {"JobId": job})
            stubber.add_response("get_document_text_detection", done, {"JobId": job, "MaxResults": 1000})
        # WHEN both are extracted
        for ref in refs:
            assert extract(data, ref, Settings(), textract=textract).elements
        stubber.assert_no_pending_responses()
    # THEN each S3 location has its own token (Textract binds a token to one location)
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    assert all(re.fullmatch(r"[0-9a-f]{64}", t) for t in tokens)
    # AND the same object again (a retried invocation) gives the same token: it joins its job
    again = client()
    again_tokens = _record_tokens(again)
    with Stubber(again) as stubber:
        stubber.add_response("start_document_text_detection", {"JobId": "ja"})
        stubber.add_response("get_document_text_detection", done)
        extract(data, refs[0], Settings(), textract=again)
    assert again_tokens == tokens[:1]


def test_a_token_bound_to_other_parameters_starts_the_job_under_a_fresh_one() -> None:
    # GIVEN Textract answers IdempotentParameterMismatch (the token names another job's parameters)
    ocr = TextractOcr(client())
    tokens = _record_tokens(ocr.client)
    with Stubber(ocr.client) as stubber:
        stubber.add_client_error(
            "start_document_text_detection", "IdempotentParameterMismatchException", http_status_code=400
        )
        stubber.add_response("start_document_text_detection", {"JobId": "fresh"})
        stubber.add_response(
            "get_document_text_detection",
            {"JobStatus": "SUCCEEDED", "Blocks": [line("ok", 0.1, 0.1, page=1)]},
            {"JobId": "fresh", "MaxResults": 1000},
        )
        # WHEN the document is read
        elements = ocr.detect_s3("bucket", "k.pdf", size=100, pages=2, token="a" * 64)
        stubber.assert_no_pending_responses()
    # THEN it is read under a new token, not retried as a configuration error
    assert [e.text for e in elements] == ["ok"]
    assert tokens[0] == "a" * 64 and tokens[1] != tokens[0] and len(tokens[1]) == 64
