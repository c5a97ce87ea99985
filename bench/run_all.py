"""Every benchmark, one after the other, each in its own process; prints every table.

    .venv/bin/python bench/run_all.py            # ~15-20 minutes on 2 cores
    .venv/bin/python bench/run_all.py --quick    # a smoke run: small sizes, 300 SciFact documents, no quality

Each part also runs alone: ingest_throughput.py, scaling.py, search_latency.py, cold_start.py,
pdf_text.py, embed_concurrency.py, quality.py, cost.py, abstention.py. Results: bench/results/*.json and
bench/results/scaling.png. compare.py (the peers side by side, ~10 minutes and a 6.6 GB venv for
unstructured-ingest on first use) runs only on its own.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    work = HERE / "results" / "work"
    quick = args.quick
    parts = [
        ["ingest_throughput.py", "--work", str(work), *(["--scifact-limit", "300"] if quick else [])],
        *(
            [] if quick else [["quality.py", "--home", str(work / "scifact")]]
        ),  # needs the whole SciFact index
        ["search_latency.py", "--home", str(work / "corpus"), "--n", "50" if quick else "200"],
        *[
            [
                "scaling.py",
                "--backend",
                backend,
                "--sizes",
                *(["1000", "5000"] if quick else ["1000", "10000", "100000"]),
            ]
            for backend in ("edge", "local")  # the default embedded index, and qdrant-client's local mode
        ],
        # every embedded store side by side (and, in full, the shared corpus ingested into each)
        [
            "backends.py",
            "--sizes",
            *(["1000", "5000"] if quick else ["1000", "10000", "100000"]),
            *([] if quick else ["--corpus", str(HERE.parent.parent / "shared" / "corpus")]),
        ],
        ["cold_start.py", "--runs", "2" if quick else "5"],
        ["pdf_text.py", "--repeat", "1" if quick else "3"],
        ["embed_concurrency.py", *(["--chunks", "1000"] if quick else [])],
        ["cost.py"],
        ["abstention.py"],
    ]
    started = time.perf_counter()
    failed = []
    for part in parts:
        print(f"\n### {part[0]}", flush=True)
        t = time.perf_counter()
        if subprocess.run([sys.executable, str(HERE / part[0]), *part[1:]], check=False).returncode:
            failed.append(part[0])
        print(f"({part[0]}: {time.perf_counter() - t:.0f} s)", flush=True)
    print(
        f"\nall benchmarks: {time.perf_counter() - started:.0f} s" + (f"; FAILED: {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
