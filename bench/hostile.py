"""Hostile documents: what each costs in wall time and peak memory, and what isolation costs.

For each case of tests/support/hostile.py, ``ragstream ingest FILE`` runs in a fresh process on a fresh
home, with the default limits; the peak resident memory of the whole process tree (the command, the
forkserver and the extraction worker) is sampled every 20 ms. Then the cost of isolation: the same
ingest of examples/ with ``RAGSTREAM_EXTRACT_ISOLATION=process`` and ``none``, side by side, in one
run, as a ratio.

    .venv/bin/python bench/hostile.py [--timeout 120] [--cases NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, save, table

sys.path.insert(0, str(ROOT))
from tests.support import hostile


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the process tree, and stdout of one command."""
    started = time.perf_counter()
    proc = psutil.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                tree = [proc, *proc.children(recursive=True)]
                rss = 0
                for p in tree:
                    with contextlib.suppress(psutil.Error):  # it ended meanwhile
                        rss += p.memory_info().rss
                peak = max(peak, rss / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    return time.perf_counter() - started, peak, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=120.0, help="RAGSTREAM_EXTRACT_TIMEOUT")
    parser.add_argument("--cases", nargs="*", default=None, help="case names (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="runs of the isolation comparison")
    args = parser.parse_args()
    env = {
        **os.environ,
        "RAGSTREAM_EMBEDDING_PROVIDER": "local",
        "RAGSTREAM_EXTRACT_TIMEOUT": str(args.timeout),
    }
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ragstream-hostile-") as tmp:
        files = hostile.write(Path(tmp) / "files", args.cases)
        for name, path in files.items():
            home = Path(tmp) / f"home-{path.stem}"
            cmd = [sys.executable, "-m", "ragstream.cli", "ingest", str(path), "--home", str(home), "--json"]
            seconds, peak, out = run(cmd, env)
            outcome = json.loads(out)[0] if out.strip() else {"status": "crashed", "reason": ""}
            rows.append(
                {
                    "case": name,
                    "file MB": round(path.stat().st_size / 2**20, 2),
                    "status": outcome["status"],
                    "wall s": round(seconds, 1),
                    "peak RSS MB (tree)": round(peak),
                    "reason": (outcome.get("reason") or "")[:90],
                }
            )
            print(table(rows[-1:], name), flush=True)

        # what isolation costs: the same folder, isolated and not, alternating, in one run
        cost: dict[str, list[float]] = {"process": [], "none": []}
        peaks: dict[str, float] = {"process": 0.0, "none": 0.0}
        for i in range(args.runs):
            for mode in ("process", "none"):
                home = Path(tmp) / f"iso-{mode}-{i}"
                cmd = [
                    sys.executable,
                    "-m",
                    "ragstream.cli",
                    "ingest",
                    str(ROOT / "examples"),
                    "--home",
                    str(home),
                ]
                seconds, peak, _ = run(cmd, {**env, "RAGSTREAM_EXTRACT_ISOLATION": mode})
                cost[mode].append(seconds)
                peaks[mode] = max(peaks[mode], peak)
    iso = [
        {
            "isolation": mode,
            "ingest examples/ (6 docs) median s": round(statistics.median(cost[mode]), 2),
            "peak RSS MB (tree)": round(peaks[mode]),
        }
        for mode in ("process", "none")
    ]
    ratio = statistics.median(cost["process"]) / statistics.median(cost["none"])
    print(table(rows, "Hostile documents, default limits (one fresh `ragstream ingest FILE` each)"))
    print(table(iso, f"Cost of isolation, first run on a fresh home (ratio process/none: {ratio:.2f})"))
    save("hostile", {"cases": rows, "isolation": iso, "isolation_ratio": round(ratio, 3)})


if __name__ == "__main__":
    main()
