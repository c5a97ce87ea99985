"""Cold start of each Lambda handler, and the installed size of each image's packages.

Cold start: a fresh interpreter imports the handler module (which builds its clients, as Lambda's
init phase does) and serves a first event from events/; measured over several fresh processes.
Image size: each image's extra is installed from constraints.txt (less overrides.txt) into a clean
folder, as its Dockerfile does (``uv pip install --target``), and measured on disk, its largest
top-level folders listed.

    .venv/bin/python bench/cold_start.py [--runs 5] [--skip-sizes]
"""

from __future__ import annotations

import argparse
import json
import os
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
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
t1 = time.perf_counter()
class Context:
    function_name = "bench"; memory_limit_in_mb = 2048; aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bench"
    def get_remaining_time_in_millis(self): return 300_000
event = json.load(open(sys.argv[2]))
app.lambda_handler(event, Context())
t2 = time.perf_counter()
print(json.dumps({"init_s": t1 - t0, "first_invoke_s": t2 - t1}))
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
    }


def image_size(extra: str) -> dict[str, Any]:
    """Install ``ragstream[extra]`` from the pins into a clean folder; its size on disk."""
    target = Path(tempfile.mkdtemp(prefix=f"ragstream-image-{extra}-"))
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
            "--target",
            str(target),
            "-c",
            str(ROOT / "constraints.txt"),
            "--override",
            str(ROOT / "overrides.txt"),
            f"{ROOT}[{extra}]",
        ],
        check=True,
        cwd=ROOT,
    )
    sizes: dict[str, int] = {}
    for f in target.rglob("*"):
        if f.is_file() and not f.is_symlink():
            top = f.relative_to(target).parts[0]
            sizes[top] = sizes.get(top, 0) + f.stat().st_size
    torch = any(p.name.startswith(("torch", "nvidia")) for p in target.iterdir())
    shutil.rmtree(target, ignore_errors=True)
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:8]
    return {
        "image": extra,
        "packages_mb": round(sum(sizes.values()) / 2**20, 1),
        "torch_or_cuda": torch,
        "largest_mb": ", ".join(f"{name} {size / 2**20:.0f}" for name, size in largest),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-sizes", action="store_true")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="ragstream-cold-"))
    starts = [cold_start(name, args.runs, home) for name in HANDLERS]
    print(table(starts, "cold start (fresh process: import + init, then the first event)"))
    sizes = [] if args.skip_sizes else [image_size(extra) for extra in ("query", "ingest")]
    if sizes:
        print(table(sizes, "installed size of each image's packages (on top of the Lambda base image)"))
    shutil.rmtree(home, ignore_errors=True)
    print(f"results: {save('cold_start', {'cold_start': starts, 'image_sizes': sizes})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
