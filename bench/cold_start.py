"""Cold start of each Lambda handler, and the installed size of each image's packages.

Cold start: a fresh interpreter imports the handler module (which builds its clients, as Lambda's
init phase does) and serves a first event from events/; measured over several fresh processes.
Image size: each image's extras (as its Dockerfile names them, with the build arguments ``sam build``
gives it for the template's default VectorStore) are installed from constraints.txt (less overrides.txt)
into a clean folder, as its Dockerfile does (``uv pip install --target``, then scripts/prune_packages.py),
and measured on disk without bytecode, its largest top-level folders listed. ``--stores``: the query
image as ``sam build --parameter-overrides VectorStore=<store>`` builds it, one row per VectorStore
value, and what each store's client adds to the Qdrant image. The template is resolved by the SAM CLI's
own code (scripts/image-build-args.py, in the tool environment scripts/sam-tools creates).

    .venv/bin/python bench/cold_start.py [--runs 5] [--skip-sizes] [--stores]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, save, table

PROBE = r"""
import importlib.util, json, sys, time
sys.path[:0] = sys.argv[3:]  # the image's task root (a bare interpreter: -I -S)
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
t1 = time.perf_counter()
c1 = time.process_time()  # CPU: less swayed than the wall by other processes on a shared machine
class Context:
    function_name = "bench"; memory_limit_in_mb = 2048; aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self): return 300_000
event = json.load(open(sys.argv[2]))
app.lambda_handler(event, Context())
t2 = time.perf_counter()
print(json.dumps({"init_s": t1 - t0, "init_cpu_s": c1, "first_invoke_s": t2 - t1}))
"""

HANDLERS = {
    "query": ("functions/query/app.py", "events/http-search.json"),
    "ingest": ("functions/ingest/app.py", "events/sqs-s3-test-event.json"),
}


def cold_start(name: str, runs: int, home: Path) -> dict[str, Any]:
    handler, event = HANDLERS[name]
    env = {
        **os.environ,
        "RAGSTREAM_HOME": str(home),
        "RAGSTREAM_API_KEY": "test-api-key",
        "RAGSTREAM_BUCKET": "bench-bucket",  # the ingest function reads only its bucket
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "POWERTOOLS_SERVICE_NAME": f"ragstream-{name}",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(ROOT / handler), str(ROOT / event)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=True,
        )
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    init = [s["init_s"] for s in samples]
    first = [s["first_invoke_s"] for s in samples]
    return {
        "handler": name,
        "runs": runs,
        "init_s_median": round(statistics.median(init), 2),
        "first_invoke_s_median": round(statistics.median(first), 2),
        "init_s_min": round(min(init), 2),
        "init_cpu_s_median": round(statistics.median(s["init_cpu_s"] for s in samples), 2),
    }


def _install(requirements: list[str], target: Path) -> None:
    """``uv pip install --target`` from the pins (less overrides.txt), for Lambda's Python and platform,
    then the Dockerfiles' pruning step (scripts/prune_packages.py)."""
    local_uv = Path(sys.executable).parent / "uv"  # scripts/setup installs uv into .venv
    uv = [str(local_uv)] if local_uv.exists() else ["uv"]
    subprocess.run(
        [
            *uv,
            "pip",
            "install",
            "--quiet",
            "--python-version",
            "3.12",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--compile-bytecode",  # as the Dockerfiles do (the size below leaves the bytecode out)
            "--target",
            str(target),
            "-c",
            str(ROOT / "constraints.txt"),
            "--override",
            str(ROOT / "overrides.txt"),
            *requirements,
        ],
        check=True,
        cwd=ROOT,
    )
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "prune_packages.py"), str(target)],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )


def _sizes(target: Path) -> dict[str, int]:
    """Bytes per top-level folder (package) of an install folder, bytecode left out."""
    sizes: dict[str, int] = {}
    for f in target.rglob("*"):
        if f.is_file() and not f.is_symlink() and f.suffix != ".pyc":
            top = f.relative_to(target).parts[0]
            sizes[top] = sizes.get(top, 0) + f.stat().st_size
    return sizes


@functools.cache
def sam_build_args() -> dict[str, Any]:
    """What ``sam build`` builds per VectorStore value (``default``: none given), from SAM's own resolution
    of template.yaml: ``{store: {function: {"Dockerfile": ..., "DockerBuildArgs": {...}}}}``."""
    sam_python = ROOT / ".tools" / "sam" / "bin" / "python"
    if not sam_python.exists():
        raise SystemExit(f"{sam_python} is missing: run scripts/sam-tools (the SAM CLI's tool environment)")
    out = subprocess.run(
        [str(sam_python), str(ROOT / "scripts" / "image-build-args.py"), str(ROOT / "template.yaml")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    stores: dict[str, Any] = json.loads(out.stdout)["stores"]
    return stores


def dockerfile_extras(image: str, store: str = "default") -> str:
    """The extras the image's Dockerfile installs (``.[query,${STORE_CLIENTS}]`` -> ``query,qdrant``), its
    build arguments as ``sam build`` gives them for this VectorStore (``default``: the template's)."""
    text = (ROOT / "functions" / image / "Dockerfile").read_text(encoding="utf-8")
    [extras] = re.findall(r'^RUN uv pip install .*"\.\[([^\]]+)\]"', text, re.M)
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    built = sam_build_args()[store]
    [function] = [f for f, meta in built.items() if meta["Dockerfile"] == f"functions/{image}/Dockerfile"]
    args.update(built[function]["DockerBuildArgs"])
    for name, value in args.items():
        extras = extras.replace("${" + name + "}", value)
    return str(extras)


def image_size(image: str, runs: int) -> dict[str, Any]:
    """Install the image's packages as its Dockerfile does into a clean folder; their size on disk, and
    the query handler's cold start from that folder alone, configured as the template deploys it."""
    target = Path(tempfile.mkdtemp(prefix=f"ragstream-image-{image}-"))
    extras = dockerfile_extras(image)
    _install([f"{ROOT}[{extras}]"], target)
    sizes = _sizes(target)
    torch = any(p.name.startswith(("torch", "nvidia")) for p in target.iterdir())
    start = image_cold_start(target, runs) if image == "query" else {}
    shutil.rmtree(target, ignore_errors=True)
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:12]
    return {
        "image": f"{image} [{extras}]",
        "packages_mb": round(sum(sizes.values()) / 2**20, 1),
        "torch_or_cuda": torch,
        **start,
        "largest_mb": ", ".join(f"{name} {size / 2**20:.0f}" for name, size in largest),
    }


def image_cold_start(target: Path, runs: int) -> dict[str, Any]:
    """The query handler imported from the image's folder in a bare interpreter (``-I -S``: only the
    standard library and that folder), with the template's Qdrant Cloud settings (nothing is called at
    init), then GET /health; median of ``runs`` fresh processes."""
    home = Path(tempfile.mkdtemp(prefix="ragstream-image-home-"))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "RAGSTREAM_HOME": str(home / "ragstream"),
        "RAGSTREAM_INDEX": "qdrant",
        "RAGSTREAM_INDEX_URL": "https://xyz.eu-central-1-0.aws.cloud.qdrant.io:6333",
        "RAGSTREAM_EMBEDDING_PROVIDER": "openai",
        "RAGSTREAM_OPENAI_API_KEY": "sk-bench",
        "RAGSTREAM_API_KEY": "test-api-key",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "POWERTOOLS_SERVICE_NAME": "ragstream-query",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    python = getattr(sys, "_base_executable", sys.executable)
    handler, event = ROOT / "functions" / "query" / "app.py", ROOT / "events" / "http-health.json"
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [python, "-I", "-S", "-c", PROBE, str(handler), str(event), str(handler.parent), str(target)],
            capture_output=True,
            text=True,
            env=env,
            cwd=home,
            check=True,
        )
        samples.append(json.loads(out.stdout.strip().splitlines()[-1]))
    shutil.rmtree(home, ignore_errors=True)
    return {
        "image_init_s_median": round(statistics.median(s["init_s"] for s in samples), 2),
        "image_init_cpu_s_median": round(statistics.median(s["init_cpu_s"] for s in samples), 2),
        # GET /health opens the index (Qdrant's client is imported then) and pings it; with no network
        # here the ping fails at once, so this is the index's opening without a real round trip
        "image_first_health_s_median": round(statistics.median(s["first_invoke_s"] for s in samples), 2),
    }


def store_sizes() -> list[dict[str, Any]]:
    """The query image as ``sam build`` builds it for each VectorStore value (the client of that store
    alone): its size, and what that client adds to the Qdrant image (qdrant-client is in the core)."""
    rows = []
    base: dict[str, int] = {}
    stores = sorted((s for s in sam_build_args() if s != "default"), key=lambda s: s != "qdrant")
    for store in stores:
        extras = dockerfile_extras("query", store)
        target = Path(tempfile.mkdtemp(prefix=f"ragstream-store-{store}-"))
        _install([f"{ROOT}[{extras}]"], target)
        sizes = _sizes(target)
        shutil.rmtree(target, ignore_errors=True)
        if store == "qdrant":
            base = sizes
        added = {k: v - base.get(k, 0) for k, v in sizes.items() if v - base.get(k, 0) > 0}
        largest = sorted(added.items(), key=lambda kv: -kv[1])[:6]
        rows.append(
            {
                "VectorStore": store,
                "query image": f"[{extras}]",
                "packages_mb": round(sum(sizes.values()) / 2**20, 1),
                "client_adds_mb": round(sum(added.values()) / 2**20, 1),
                "largest_added_mb": ", ".join(f"{n} {s / 2**20:.1f}" for n, s in largest) or "-",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-sizes", action="store_true")
    parser.add_argument(
        "--stores",
        action="store_true",
        help="also: the query image's size as sam build builds it for each VectorStore value",
    )
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="ragstream-cold-"))
    starts = [cold_start(name, args.runs, home) for name in HANDLERS]
    print(table(starts, "cold start (fresh process: import + init, then the first event)"))
    sizes = [] if args.skip_sizes else [image_size(image, args.runs) for image in ("query", "ingest")]
    if sizes:
        print(table(sizes, "installed size of each image's packages (on top of the Lambda base image)"))
    stores = store_sizes() if args.stores else []
    if stores:
        print(table(stores, "the query image built for each VectorStore (MiB, bytecode left out)"))
    shutil.rmtree(home, ignore_errors=True)
    result = {"cold_start": starts, "image_sizes": sizes, "store_clients": stores}
    print(f"results: {save('cold_start', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
