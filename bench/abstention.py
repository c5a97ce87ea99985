"""Does the offline (extractive) answerer know when the documents do not answer? And how fast is it?

The set (``bench/data/abstention/``): nine short documents written for it (two quarterly reports of
one company, one of another, two product sheets of one maker, IT, HR, an incident postmortem, an
office guide), plus ``../shared/corpus/norwich-city.txt`` (a Wikipedia article, read in place).
120 questions in pairs: an answerable one with the fact that answers it, and its twin on the same
topic asking for a fact the documents do not hold (another year, product, country, person or
number). Half the documents are the ``calibrate`` split (thresholds were chosen on it), the other
half the ``test`` split (never looked at while tuning).

Each question goes through the real path: the files are ingested with the offline model into the
embedded store, then ``Retriever.ask`` answers with no LLM configured. Printed per split:

- abstained: unanswerable questions answered with the no-answer sentence (``grounded`` false);
- answered / correct: answerable questions given an answer, and answers that hold the expected fact
  and cite its document;
- latency p50/p95 of one whole ``ask`` (embed the question, retrieve, answer), warm: wall time, and
  the process's CPU time (less sensitive to other processes on a shared machine).

    .venv/bin/python bench/abstention.py [--home DIR] [--split calibrate|test|all] [--show]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import SHARED, percentiles, save, table

DATA = Path(__file__).resolve().parent / "data" / "abstention"
SHARED_DOCS = ("norwich-city.txt",)


def load_questions(split: str) -> list[dict[str, Any]]:
    """The questions of one split (or all), each with ``answer`` (None: unanswerable) and ``doc``."""
    rows = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines() if line]
    return [r for r in rows if split == "all" or r["split"] == split]


def _accepted(answer: str | list[str] | None) -> list[str]:
    """The strings any one of which makes an answer correct (none for an unanswerable question)."""
    return [] if answer is None else [answer] if isinstance(answer, str) else answer


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates of one group of answered questions."""
    answerable = [r for r in rows if r["expected"] is not None]
    unanswerable = [r for r in rows if r["expected"] is None]
    answered = [r for r in answerable if r["grounded"]]
    correct = [r for r in answered if r["correct"]]
    lat = percentiles([r["seconds"] for r in rows]) if rows else {}
    cpu = percentiles([r["cpu_seconds"] for r in rows]) if rows else {}
    return {
        "answerable": len(answerable),
        "answered": round(len(answered) / len(answerable), 3) if answerable else None,
        "correct": round(len(correct) / len(answerable), 3) if answerable else None,
        "unanswerable": len(unanswerable),
        "abstained": round(sum(not r["grounded"] for r in unanswerable) / len(unanswerable), 3)
        if unanswerable
        else None,
        "p50_ms": lat.get("p50_ms"),
        "p95_ms": lat.get("p95_ms"),
        "cpu_p50_ms": cpu.get("p50_ms"),
        "cpu_p95_ms": cpu.get("p95_ms"),
    }


def ask_all(retriever: Any, questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ask every question through ``retriever``; one row per question with its verdict and time."""
    rows = []
    for q in questions:
        started, cpu = time.perf_counter(), time.process_time()
        answer = retriever.ask(q["question"])
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        cites_doc = any(c.source.endswith("/" + q["doc"]) for c in answer.citations)
        holds = any(_normal(a) in _normal(answer.answer) for a in _accepted(q["answer"]))
        rows.append(
            {
                "id": q["id"],
                "split": q["split"],
                "question": q["question"],
                "expected": q["answer"],
                "grounded": answer.grounded,
                "correct": bool(answer.grounded and holds and cites_doc),
                "answer": answer.answer,
                "seconds": seconds,
                "cpu_seconds": cpu,
            }
        )
    return rows


def sweep(retriever: Any, questions: list[dict[str, Any]], coverages: list[float]) -> None:
    """Abstention and answers for each share of key terms required, and similarity floor; by
    balanced accuracy (mean of correct and abstained), best last."""
    from ragstream import extractive

    configured = (extractive.MIN_COVERAGE, retriever.settings.min_answer_score)
    results = []
    try:
        for coverage in coverages:
            for floor in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45):
                extractive.MIN_COVERAGE = coverage
                retriever.settings.min_answer_score = floor
                s = score(ask_all(retriever, questions))
                balanced = round((s["correct"] + s["abstained"]) / 2, 3)
                results.append(
                    {"min_coverage": coverage, "min_answer_score": floor, **s, "balanced": balanced}
                )
    finally:
        extractive.MIN_COVERAGE, retriever.settings.min_answer_score = configured
    results.sort(key=lambda r: (r["balanced"], r["correct"]))
    print(table(results, f"sweep over {len(questions)} questions"))


def main(argv: list[str] | None = None) -> int:
    from ragstream.config import get_settings
    from ragstream.ingest import Pipeline
    from ragstream.query import Retriever

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=None, help="default: a fresh temporary folder")
    parser.add_argument("--split", choices=("calibrate", "test", "all"), default="all")
    parser.add_argument("--show", action="store_true", help="print every question with its answer")
    parser.add_argument(
        "--sweep",
        default=None,
        help="calibration: shares of key terms to try, e.g. 0.6,0.75,0.8,1 (with similarity floors 0.2-0.45)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ragstream-abstention-") as tmp:
        home = args.home or Path(tmp)
        settings = get_settings(home=home, llm="extractive", embedding_provider="local")
        pipeline = Pipeline.from_settings(settings)
        try:
            sources = [str(DATA / "docs")]
            shared = [SHARED / "corpus" / name for name in SHARED_DOCS]
            sources += [str(p) for p in shared if p.is_file()]
            missing = {p.name for p in shared if not p.is_file()}
            for src in sources:
                for outcome in pipeline.sync(src):
                    if outcome.status == "failed":
                        print(f"warning: {outcome.source} failed: {outcome.error}", file=sys.stderr)
        finally:
            pipeline.index.close()
        questions = [q for q in load_questions(args.split) if q["doc"] not in missing]
        if missing:
            print(f"note: {sorted(missing)} not under {SHARED / 'corpus'}: their questions are left out")

        retriever = Retriever.from_settings(settings)
        try:
            for q in questions[:3]:  # warm: the ONNX session, the tokenizer, numpy, the store's caches
                retriever.ask(q["question"])
            if args.sweep:
                sweep(retriever, questions, [float(x) for x in args.sweep.split(",")])
                return 0
            rows = ask_all(retriever, questions)
        finally:
            retriever.index.close()

    if args.show:
        for r in rows:
            verdict = (
                ("ok" if r["correct"] else ("WRONG" if r["grounded"] else "MISSED"))
                if r["expected"] is not None
                else ("abstained" if not r["grounded"] else "ANSWERED")
            )
            print(f"{r['id']:<10} {verdict:<9} {r['seconds'] * 1000:6.1f} ms  {r['question']}")
            if r["grounded"]:
                print(f"{'':>10} -> {r['answer'][:220]}")
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("calibrate", "test")}
    table_rows = [{"split": s, **score(rs)} for s, rs in by_split.items() if rs]
    if len(table_rows) > 1:
        table_rows.append({"split": "all", **score(rows)})
    print(table(table_rows, f"offline answerer: abstention and answers ({len(rows)} questions)"))
    load = os.getloadavg()[0]
    print(
        f"latency: one whole ask, warm (p50/p95 wall; cpu: this process's CPU time, all its threads); "
        f"load average while measuring {load:.1f} on {os.cpu_count()} cores"
    )
    print(f"results: {save('abstention', {'splits': table_rows, 'questions': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
