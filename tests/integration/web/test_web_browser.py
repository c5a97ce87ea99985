"""The web page in a real headless Chromium (the distribution's ``chromium``), against ``ragstream serve``.

One index is made with ``ragstream ingest`` from examples/ plus a broken PDF (a failed document) and a
text file full of markup (hostile text). Four ``ragstream serve`` processes then run over copies of it,
each on a port it picks itself:

- ``secured``: requires an API key, traces to the local Langfuse peer, takes bodies up to 2 KiB;
- ``open``: no key, no tracing;
- ``down``: no key, its Qdrant URL a closed local port, so every query answers 503;
- ``chat``: no key, answers from a chat model (the local OpenAI peer) instead of the extractive answerer.

Playwright drives the system's browser binary; nothing downloads a browser (``playwright install`` is
never run). A screenshot of each view is written to ``.artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragstream.api import FEEDBACK_SCORE
from tests.peers.langfuse_server import LangfuseServer
from tests.peers.openai_server import OpenAIServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (scripts/setup dev installs it)"
)
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium binary on PATH: install the distribution's package (scripts/apt-packages.txt "
        "lists it; scripts/setup installs it where it can)",
    ),
    pytest.mark.timeout(300),
]
expect = playwright_api.expect

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / ".artifacts" / "screenshots"
RAGSTREAM = Path(sys.executable).with_name("ragstream")
API_KEY = "test-api-key"  # a placeholder, not a secret
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 45_000
HOSTILE = (
    'The parking garage code is <img src=x onerror="window.__pwned=1"> and '
    "<script>window.__pwned=2</script> do not share it."
)


# -- the servers -------------------------------------------------------------------------------------------


@dataclass
class Served:
    """A running ``ragstream serve``."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any ragstream, Langfuse or OpenAI setting, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAGSTREAM_", "LANGFUSE_", "OPENAI_", "AWS_", "QDRANT_"))
    }
    env.update(RAGSTREAM_LLM="extractive", RAGSTREAM_EMBEDDING_PROVIDER="local")
    env.update(extra)
    return env


def start_server(home: Path, log: Path, **extra: str) -> Served:
    """``ragstream serve`` on 127.0.0.1, on a free port it picks itself (read from its first lines)."""
    command = [str(RAGSTREAM), "serve", "--home", str(home), "--host", "127.0.0.1", "--port", "0"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=clean_env(**extra), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        found = re.search(r"ragstream API on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        if found:
            url = found.group(1)
            httpx.get(f"{url}/health", timeout=30).raise_for_status()
            return Served(url, process, log)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"ragstream serve did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


def stop_server(served: Served) -> None:
    served.process.terminate()
    try:
        served.process.wait(15)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait(15)


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/, a PDF that is not one, and a text file of markup."""
    folder = tmp_path_factory.mktemp("web") / "docs"
    shutil.copytree(ROOT / "examples", folder)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not a PDF at all\n")
    (folder / "notes").mkdir()
    (folder / "notes" / "hostile.txt").write_text(HOSTILE + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def indexed(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RAGSTREAM_HOME with the corpus ingested by ``ragstream ingest``."""
    home = tmp_path_factory.mktemp("web-home") / "home"
    result = subprocess.run(
        [str(RAGSTREAM), "ingest", str(corpus), "--home", str(home)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 failed" in result.stdout, result.stdout
    return home


@pytest.fixture(scope="module")
def langfuse() -> Iterator[LangfuseServer]:
    run = uuid.uuid4().hex[:12]
    with LangfuseServer(public_key=f"pk-lf-test-{run}", secret_key=f"sk-lf-test-{run}") as server:
        yield server


def _serve_copy(indexed: Path, tmp_path_factory: pytest.TempPathFactory, name: str, **extra: str) -> Served:
    home = tmp_path_factory.mktemp(f"web-{name}") / "home"
    shutil.copytree(indexed, home)
    return start_server(home, home.parent / "serve.log", **extra)


@pytest.fixture(scope="module")
def secured(
    indexed: Path, tmp_path_factory: pytest.TempPathFactory, langfuse: LangfuseServer
) -> Iterator[Served]:
    assert langfuse.public_key and langfuse.secret_key
    served = _serve_copy(
        indexed,
        tmp_path_factory,
        "secured",
        RAGSTREAM_API_KEY=API_KEY,
        RAGSTREAM_MAX_BODY_BYTES="2048",
        LANGFUSE_PUBLIC_KEY=langfuse.public_key,
        LANGFUSE_SECRET_KEY=langfuse.secret_key,
        LANGFUSE_BASE_URL=langfuse.url,
        LANGFUSE_FLUSH_INTERVAL="0.5",
    )
    yield served
    stop_server(served)


@pytest.fixture(scope="module")
def open_server(indexed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = _serve_copy(indexed, tmp_path_factory, "open")
    yield served
    stop_server(served)


@pytest.fixture(scope="module")
def down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("web-down") / "home"
    home.mkdir()
    served = start_server(
        home,
        home.parent / "serve.log",
        RAGSTREAM_INDEX="qdrant",
        RAGSTREAM_INDEX_URL=f"http://127.0.0.1:{closed_port()}",
        RAGSTREAM_QDRANT_TIMEOUT="1",
    )
    yield served
    stop_server(served)


SOURCE_BLOCK = re.compile(
    r'^<source n="(\d+)" from="([^"]+)"[^>]*>\n(.*?)\n</source>', re.MULTILINE | re.DOTALL
)


def cite_the_revenue(body: dict[str, Any]) -> str:
    """A chat model that follows the prompt: it cites the numbered source that holds the revenue."""
    prompt = "\n".join(str(m.get("content") or "") for m in body["messages"])
    for n, _, text in SOURCE_BLOCK.findall(prompt):
        if "18.4 million EUR" in text:
            return f"Revenue in the third quarter of 2024 was 18.4 million EUR [{n}]."
    return "I cannot answer this from the indexed documents."


@pytest.fixture(scope="module")
def chat(indexed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with OpenAIServer(chat_reply=cite_the_revenue) as model:
        served = _serve_copy(
            indexed,
            tmp_path_factory,
            "chat",
            RAGSTREAM_LLM="openai",
            RAGSTREAM_OPENAI_API_KEY="sk-placeholder",
            RAGSTREAM_OPENAI_BASE_URL=f"{model.url}/v1",
        )
        yield served
        stop_server(served)


# -- the browser -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS, headless=True)
        yield launched
        launched.close()


@dataclass
class Tab:
    """A page in a fresh browser context, with what it logged and requested."""

    page: Any
    problems: list[str]
    urls: list[str]


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1100, "height": 820}, service_workers="block")
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    problems: list[str] = []
    urls: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if re.search(r"Content Security Policy|Trusted Type|Uncaught", message.text)
            else None
        ),
    )
    page.on("request", lambda request: urls.append(request.url))
    yield Tab(page, problems, urls)
    context.close()
    # THEN (every test): no script error, no policy violation
    assert problems == []


def shot(page: Any, name: str) -> None:
    """A full-page screenshot, kept as a test artifact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def enter_key(page: Any, key: str = API_KEY) -> None:
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-state")).to_have_text("Key saved for this tab." if key else "No key saved.")


def ask(page: Any, question: str) -> Any:
    """Ask through the question box; the response of POST /ask."""
    with page.expect_response(lambda r: r.url.endswith("/ask")) as info:
        page.fill("#question", question)
        page.press("#question", "Enter")
    return info.value


def search(page: Any, query: str, **filters: str) -> Any:
    """Search through the search form; the response of POST /search."""
    page.click("#tab-search")
    page.fill("#query", query)
    for field, value in filters.items():
        page.fill(f"#{field}", value)
    with page.expect_response(lambda r: r.url.endswith("/search")) as info:
        page.click("#search-form button[type=submit]")
    return info.value


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


# -- ask -----------------------------------------------------------------------------------------------------


def test_ask_renders_the_answer_and_a_citation_opens_its_passage(secured: Served, tab: Tab) -> None:
    page = tab.page
    # GIVEN the page of a server that requires a key, and the key entered once
    page.goto(f"{secured.url}/")
    enter_key(page)
    assert page.evaluate("sessionStorage.getItem('ragstream.apiKey')") == API_KEY

    # WHEN a question is asked
    response = ask(page, "What revenue did Northwind report for the third quarter of 2024?")
    answer = response.json()

    # THEN the request carried the key as the API's header, and the answer renders with its citations
    assert response.status == 200, answer
    assert response.request.headers["x-api-key"] == API_KEY
    assert answer["grounded"] and answer["citations"]
    first = answer["citations"][0]
    assert first["source"].endswith("/finance/quarterly-report-q3-2024.pdf") and first["page"]
    expect(page.locator("#answer")).to_be_visible()
    assert answer["grounding"] == "key_terms"
    expect(page.locator("#grounded")).to_have_text("Quoted from the sources (not verified to answer)")
    expect(page.locator("#answered-by")).to_contain_text("extractive answerer")
    expect(page.locator("#citations li")).to_have_count(len(answer["citations"]))
    expect(page.locator("#citations li").first).to_contain_text(first["source"])
    expect(page.locator("#citations li").first).to_contain_text(f"page {first['page']}")
    text = page.locator("#answer-text")
    expect(text).to_contain_text(re.sub(r"\s*\[\d+\]", "", answer["answer"]).split(".")[0])
    expect(text.locator("button.cite")).to_have_count(len(set(re.findall(r"\[(\d+)\]", answer["answer"]))))
    shot(page, "ask")

    # WHEN the [1] in the answer is clicked
    text.locator("button.cite").first.click()

    # THEN the passage opens: its snippet, source, page and title
    expect(page.locator("#passage")).to_be_visible()
    expect(page.locator("#passage-text")).to_have_text(first["snippet"])
    expect(page.locator("#passage-source")).to_have_text(first["source"])
    expect(page.locator("#passage-page")).to_have_text(str(first["page"]))
    expect(page.locator("#passage-title")).to_have_text(f"[1] {first['title']}")
    shot(page, "ask-passage")
    page.keyboard.press("Escape")
    expect(page.locator("#passage")).to_be_hidden()

    # AND the key never went into a URL
    assert tab.urls and not any(API_KEY in url for url in tab.urls)


def test_feedback_is_sent_and_reaches_langfuse(secured: Served, tab: Tab, langfuse: LangfuseServer) -> None:
    page = tab.page
    # GIVEN an answer from a server that traces to Langfuse
    page.goto(f"{secured.url}/")
    expect(page.locator("#status")).to_contain_text("feedback on")
    enter_key(page)
    answer = ask(page, "How many days of paid annual leave do employees get?").json()
    assert answer["trace_id"]
    expect(page.locator("#thumb-up")).to_be_enabled()

    # WHEN the user gives a thumbs up
    with page.expect_request(lambda r: r.url.endswith("/feedback")) as sent:
        page.click("#thumb-up")

    # THEN /feedback is called for that answer's trace, and Langfuse receives the score
    request = sent.value
    assert json.loads(request.post_data or "") == {
        "trace_id": answer["trace_id"],
        "score": 1,
        "feedback_token": answer["feedback_token"],
    }
    assert request.headers["x-api-key"] == API_KEY
    expect(page.locator("#feedback-state")).to_have_text("Thank you: your feedback was recorded.")
    expect(page.locator("#thumb-up")).to_have_attribute("aria-pressed", "true")
    shot(page, "ask-feedback")
    assert langfuse.wait_for(lambda s: any(x.get("traceId") == answer["trace_id"] for x in s.scores), 30)
    [score] = [x for x in langfuse.scores if x.get("traceId") == answer["trace_id"]]
    assert score["name"] == FEEDBACK_SCORE and score["value"] == 1.0


def test_without_a_key_or_tracing_the_page_works_and_says_feedback_is_off(
    open_server: Served, tab: Tab
) -> None:
    page = tab.page
    page.goto(f"{open_server.url}/")
    expect(page.locator("#status")).to_contain_text("feedback off")
    response = ask(page, "How many days of paid annual leave do employees get?")
    assert response.status == 200 and "x-api-key" not in response.request.headers
    expect(page.locator("#answer-text")).to_contain_text("25 days")
    expect(page.locator("#feedback-state")).to_have_text(
        "Feedback is off: this server does not have tracing configured."
    )
    expect(page.locator("#thumb-up")).to_be_hidden()
    shot(page, "ask-feedback-off")


def test_an_answer_of_the_chat_model_says_which_model_answered(chat: Served, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{chat.url}/")
    expect(page.locator("#status")).to_contain_text("answers by gpt-")
    answer = ask(page, "What revenue did Northwind report for the third quarter of 2024?").json()
    assert answer["model"].startswith("gpt-") and answer["grounded"], answer
    expect(page.locator("#answered-by")).to_have_text(f"Answered by the chat model {answer['model']}")
    expect(page.locator("#grounded")).to_have_text("Grounded in the sources")
    expect(page.locator("#answer-text")).to_contain_text("18.4 million EUR")
    shot(page, "ask-chat-model")
    page.locator("#answer-text button.cite").click()
    cited = answer["citations"][0]
    expect(page.locator("#passage-source")).to_have_text(cited["source"])
    expect(page.locator("#passage-text")).to_contain_text("18.4 million EUR")


# -- documents -----------------------------------------------------------------------------------------------


def test_documents_show_status_counts_and_the_failure_reason(secured: Served, tab: Tab) -> None:
    page = tab.page
    failed = httpx.get(
        f"{secured.url}/documents", params={"status": "failed"}, headers={"x-api-key": API_KEY}
    ).json()["documents"]
    assert [d["source"].rsplit("/", 1)[-1] for d in failed] == ["broken.pdf"] and failed[0]["error"]

    # GIVEN the key, WHEN the documents view opens
    page.goto(f"{secured.url}/")
    enter_key(page)
    page.click("#tab-documents")

    # THEN every document is listed, and the failed one shows its reason
    rows = page.locator("#documents-body tr")
    expect(rows).to_have_count(8)
    expect(page.locator("#documents-caption")).to_contain_text("8 shown, 1 failed")
    broken = rows.filter(has_text="broken.pdf")
    expect(broken.locator('td[data-label="Status"]')).to_have_text("failed")
    expect(broken.locator('td[data-label="Reason"]')).to_contain_text(failed[0]["error"])
    pdf = rows.filter(has_text="quarterly-report-q3-2024.pdf")
    expect(pdf.locator('td[data-label="Status"]')).to_have_text("indexed")
    expect(pdf.locator('td[data-label="Pages"]')).to_have_text("2")
    expect(pdf.locator('td[data-label="Chunks"]')).not_to_have_text("0")
    shot(page, "documents")

    # WHEN filtered by status
    page.select_option("#doc-status", "failed")
    page.click("#documents-form button[type=submit]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("broken.pdf")

    # WHEN paged through five at a time with the cursor
    page.select_option("#doc-status", "")
    page.select_option("#doc-limit", "5")
    page.click("#documents-form button[type=submit]")
    expect(rows).to_have_count(5)
    first_page = rows.locator('td[data-label="Source"]').all_inner_texts()
    with page.expect_request(lambda r: "cursor=" in r.url):
        page.click("#doc-next")
    expect(rows).to_have_count(3)
    expect(page.locator("#doc-page")).to_have_text("Page 2")
    expect(page.locator("#doc-next")).to_be_disabled()
    second_page = rows.locator('td[data-label="Source"]').all_inner_texts()
    page.click("#doc-prev")
    expect(page.locator("#doc-page")).to_have_text("Page 1")
    expect(rows).to_have_count(5)
    assert rows.locator('td[data-label="Source"]').all_inner_texts() == first_page
    assert not set(first_page) & set(second_page) and len(set(first_page) | set(second_page)) == 8


SOURCE_LAYOUT = """source => {
  const table = document.getElementById("documents");
  const cells = [...document.querySelectorAll('#documents-body td[data-label="Source"]')];
  const cell = cells.find(c => c.innerText === source);
  const uri = cell.querySelector(".source-uri");
  // a part between two break opportunities that spans two lines was broken inside: letter by letter
  const split = cells.flatMap(c => [...c.querySelector(".source-uri").childNodes])
    .filter(n => n.nodeType === Node.TEXT_NODE)
    .filter(n => {
      const range = document.createRange();
      range.selectNodeContents(n);
      return range.getClientRects().length > 1;
    })
    .map(n => n.textContent);
  return {
    table: table.getBoundingClientRect().width,
    cell: cell.getBoundingClientRect().width,
    lines: uri.getBoundingClientRect().height / parseFloat(getComputedStyle(uri).lineHeight),
    title: cell.title,
    split,
  };
}"""


def test_the_documents_table_gives_the_source_the_room_and_wraps_it_at_separators(
    open_server: Served, corpus: Path, tab: Tab
) -> None:
    page = tab.page
    sources = [d["source"] for d in httpx.get(f"{open_server.url}/documents").json()["documents"]]
    longest = max(sources, key=len)
    assert longest.startswith(corpus.as_uri() + "/")

    # GIVEN a home of local files, WHEN the documents view opens 1280 px wide
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{open_server.url}/#documents")
    expect(page.locator("#documents-body tr")).to_have_count(len(sources))
    shot(page, "documents-1280")

    # THEN the source column takes the free space, and the longest source wraps at its separators into
    # a line or two, shown whole on hover
    layout = page.evaluate(SOURCE_LAYOUT, longest)
    assert layout["cell"] > 0.4 * layout["table"], layout
    assert layout["lines"] < 4 and layout["split"] == [], layout
    assert layout["title"] == longest
    cells = page.locator('#documents-body td[data-label="Source"]')
    assert cells.evaluate_all("cells => cells.map(c => c.title)") == cells.all_inner_texts()

    # AND the prefix boxes suggest a local folder, not a bucket
    placeholder = page.locator("#doc-prefix").get_attribute("placeholder") or ""
    assert placeholder.startswith("file:///") and placeholder.endswith("/docs/"), placeholder
    expect(page.locator("#source-prefix")).to_have_attribute("placeholder", placeholder)

    # AND at narrower widths: the same table at 1024 px, cards at 800 px, never a sideways scroll
    for width in (1024, 800):
        page.set_viewport_size({"width": width, "height": 800})
        layout = page.evaluate(SOURCE_LAYOUT, longest)
        assert layout["cell"] > 0.4 * layout["table"], (width, layout)
        assert layout["lines"] < 4 and layout["split"] == [], (width, layout)
        assert no_horizontal_scroll(page), width
        shot(page, f"documents-{width}")


SCOPED_KEY = "handbook-only-key-0123456789abcdefghij"  # a placeholder, not a secret


@pytest.fixture(scope="module")
def scoped(
    indexed: Path, corpus: Path, tmp_path_factory: pytest.TempPathFactory, langfuse: LangfuseServer
) -> Iterator[Served]:
    """A server whose one key reads only the handbook folder, with tracing on."""
    assert langfuse.public_key and langfuse.secret_key
    keys = {"handbook": {"key": SCOPED_KEY, "prefixes": [(corpus / "handbook").resolve().as_uri() + "/"]}}
    served = _serve_copy(
        indexed,
        tmp_path_factory,
        "scoped",
        RAGSTREAM_API_KEY=json.dumps(keys),
        LANGFUSE_PUBLIC_KEY=langfuse.public_key,
        LANGFUSE_SECRET_KEY=langfuse.secret_key,
        LANGFUSE_BASE_URL=langfuse.url,
        LANGFUSE_FLUSH_INTERVAL="0.5",
    )
    yield served
    stop_server(served)


def test_a_scoped_key_sees_only_its_prefixes_and_can_give_feedback(
    scoped: Served, corpus: Path, tab: Tab, langfuse: LangfuseServer
) -> None:
    page = tab.page
    handbook = (corpus / "handbook").resolve().as_uri() + "/"
    page.goto(f"{scoped.url}/")
    enter_key(page, SCOPED_KEY)

    # an answer from the handbook, cited to it
    answer = ask(page, "How many days of paid annual leave do employees get?").json()
    assert answer["citations"] and all(c["source"].startswith(handbook) for c in answer["citations"])
    assert answer["feedback_token"]

    # a search for the finance report finds nothing outside the handbook
    hits = search(page, "revenue in the third quarter").json()["hits"]
    assert all(h["source"].startswith(handbook) for h in hits)
    expect(page.locator("#hits")).not_to_contain_text("quarterly-report")

    # the documents view lists the handbook only
    page.click("#tab-documents")
    rows = page.locator("#documents-body tr")
    expect(rows).to_have_count(2)
    assert all("handbook" in text for text in rows.locator('td[data-label="Source"]').all_inner_texts())
    shot(page, "scoped-documents")

    # feedback on its own answer is recorded: the page sends the answer's token
    page.click("#tab-ask")
    with page.expect_request(lambda r: r.url.endswith("/feedback")) as sent:
        page.click("#thumb-down")
    body = json.loads(sent.value.post_data or "")
    assert body == {"trace_id": answer["trace_id"], "score": 0, "feedback_token": answer["feedback_token"]}
    expect(page.locator("#feedback-state")).to_have_text("Thank you: your feedback was recorded.")
    assert langfuse.wait_for(lambda s: any(x.get("traceId") == answer["trace_id"] for x in s.scores), 30)


# -- errors --------------------------------------------------------------------------------------------------


def test_a_wrong_key_shows_the_401_message(secured: Served, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{secured.url}/")
    enter_key(page, "not-the-key")
    response = ask(page, "How many days of paid annual leave do employees get?")
    assert response.status == 401
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_have_text(
        "The API key is missing or wrong (401). Enter the key under “API key” at the top, save it, "
        "and try again."
    )
    expect(page.locator("#api-key")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#answer")).to_be_hidden()
    shot(page, "error-401")

    # the same message for the documents; then the right key clears it
    page.click("#tab-documents")
    expect(error).to_contain_text("(401)")
    enter_key(page)
    page.click("#documents-form button[type=submit]")
    expect(error).to_be_hidden()
    expect(page.locator("#documents-body tr")).to_have_count(8)


def test_a_body_over_the_limit_shows_413_and_an_invalid_filter_422(secured: Served, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{secured.url}/")
    enter_key(page)
    # the server takes 2 KiB; the question box takes 4000 characters
    response = ask(page, "leave " * 600)
    assert response.status == 413
    expect(page.locator("#error")).to_contain_text("The request is too large (413)")
    expect(page.locator("#error")).to_contain_text("the limit is 2048 bytes")
    shot(page, "error-413")

    response = search(page, "leave", metadata="bad key=people")
    assert response.status == 422
    expect(page.locator("#error")).to_contain_text("The request was not accepted (422): filter › metadata")
    shot(page, "error-422")


def test_an_unreachable_index_shows_503(down: Served, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{down.url}/")
    expect(page.locator("#status")).to_contain_text("Index unreachable")
    response = search(page, "leave")
    assert response.status == 503
    expect(page.locator("#error")).to_contain_text("The service is unavailable right now (503)")
    expect(page.locator("#error")).to_contain_text("Try again in 5 seconds.")
    shot(page, "error-503")


# -- search --------------------------------------------------------------------------------------------------


def test_search_shows_hits_and_sends_the_filters(open_server: Served, corpus: Path, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{open_server.url}/#search")
    expect(page.locator("#view-search")).to_be_visible()

    # content type
    response = search(page, "revenue and costs", **{"content-type": "application/pdf"})
    hits = response.json()["hits"]
    assert json.loads(response.request.post_data)["filter"] == {"content_type": "application/pdf"}
    assert hits and all(h["source"].endswith(".pdf") for h in hits)
    expect(page.locator("#hits > li")).to_have_count(len(hits))
    expect(page.locator("#hits > li").first).to_contain_text("application/pdf")
    expect(page.locator("#search-summary")).to_have_text(f"{len(hits)} results for “revenue and costs”.")
    shot(page, "search")

    # folder
    folder = f"{corpus.as_uri()}/handbook/"
    page.fill("#content-type", "")
    response = search(page, "policy", **{"source-prefix": folder})
    hits = response.json()["hits"]
    assert hits and all(h["source"].startswith(folder) for h in hits)
    for source in page.locator("#hits .source-uri").all_inner_texts():
        assert source.startswith(folder)

    # metadata: sent as given; nothing carries it
    page.fill("#source-prefix", "")
    response = search(page, "policy", metadata="team=nobody\n")
    assert json.loads(response.request.post_data)["filter"] == {"metadata": {"team": "nobody"}}
    expect(page.locator("#search-summary")).to_have_text("Nothing found for “policy”.")
    expect(page.locator("#hits > li")).to_have_count(0)


def test_hostile_document_text_is_shown_as_text(open_server: Served, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{open_server.url}/")
    response = search(page, "parking garage code")
    assert HOSTILE in response.json()["hits"][0]["text"]
    hit = page.locator("#hits > li").first
    expect(hit.locator(".hit-text")).to_contain_text(HOSTILE)
    hit.locator("button.link").click()
    expect(page.locator("#passage-text")).to_contain_text(HOSTILE)
    assert page.locator("#hits img, #passage img, #hits script").count() == 0
    assert page.evaluate("window.__pwned") is None
    shot(page, "search-hostile")


# -- keyboard, labels, phone ---------------------------------------------------------------------------------


def tab_to(page: Any, predicate: str, limit: int = 25) -> None:
    """Press Tab until the focused element satisfies the JS ``predicate`` (of ``e``)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(e => Boolean({predicate}))(document.activeElement)"):
            return
    raise AssertionError(f"{predicate} never got the focus")


def test_the_page_works_with_the_keyboard_alone(open_server: Served, tab: Tab) -> None:
    page = tab.page
    page.goto(f"{open_server.url}/")
    # every control has a name a screen reader can say
    unnamed = page.evaluate(
        """[...document.querySelectorAll('input, select, textarea, button')].filter(e =>
             !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()
           ).map(e => e.id || e.outerHTML)"""
    )
    assert unnamed == []

    # the first Tab reaches the skip link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"

    # ask: Tab to the box, type, Enter
    tab_to(page, "e.id === 'question'")
    page.keyboard.type("How many days of paid annual leave do employees get?")
    with page.expect_response(lambda r: r.url.endswith("/ask")):
        page.keyboard.press("Enter")
    expect(page.locator("#answer-text")).to_contain_text("25 days")

    # a citation: Tab to it, Enter opens the passage, Escape closes it and gives the focus back
    tab_to(page, "e.classList.contains('cite')")
    page.keyboard.press("Enter")
    expect(page.locator("#passage")).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "passage-close"
    page.keyboard.press("Escape")
    expect(page.locator("#passage")).to_be_hidden()
    assert page.evaluate("document.activeElement.classList.contains('cite')")

    # the dialog's close event comes a task after the focus has moved on: it must not take it back
    page.keyboard.press("Enter")
    expect(page.locator("#passage")).to_be_visible()
    moved_to = page.evaluate(
        """() => new Promise(done => {
             document.getElementById('passage').close();
             document.getElementById('tab-ask').focus();
             setTimeout(() => done(document.activeElement.id), 100);
           })"""
    )
    assert moved_to == "tab-ask"

    # the views: arrow keys move along the tabs
    page.focus("#tab-ask")
    expect(page.locator("#tab-ask")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-search")).to_be_focused()
    expect(page.locator("#tab-search")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#view-search")).to_be_visible()
    expect(page.locator("#view-ask")).to_be_hidden()
    page.keyboard.press("End")
    expect(page.locator("#view-documents")).to_be_visible()
    expect(page.locator("#documents-body tr")).to_have_count(8)
    page.keyboard.press("Home")
    expect(page.locator("#view-ask")).to_be_visible()


@pytest.mark.parametrize("view", ["ask", "search", "documents"])
def test_phone_width(open_server: Served, tab: Tab, view: str) -> None:
    page = tab.page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{open_server.url}/#{view}")
    expect(page.locator(f"#view-{view}")).to_be_visible()
    if view == "ask":
        ask(page, "What revenue did Northwind report for the third quarter of 2024?")
        expect(page.locator("#answer")).to_be_visible()
    elif view == "search":
        search(page, "hotel costs in London")
        expect(page.locator("#hits > li").first).to_be_visible()
    else:
        expect(page.locator("#documents-body tr")).to_have_count(8)
    assert no_horizontal_scroll(page)
    shot(page, f"phone-{view}")
