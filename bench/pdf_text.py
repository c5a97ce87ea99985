"""Milliseconds per page of the PDF text-layer reader, before (per rectangle) and after (bulk).

Reads every readable PDF of the shared corpus and the generated table-heavy filings
(``tests/data/make_pdf_reference.py``: many small table cells per page, like a quarterly filing)
with the old reader kept in that script and with today's ``read_pages``; each page is timed on its
own (text page, letters, image cover, lines, paragraphs), best of ``--repeat`` runs per document.

    .venv/bin/python bench/pdf_text.py [--repeat 3] [--skip-before]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data"))
from make_pdf_reference import CORPUS, _legacy_read_page, reference_pdfs
from report import save, table

from ragstream.errors import DocumentError
from ragstream.extract import pdf_text

TARGETS_MS = {"corpus": 20.0, "table-heavy": 50.0}  # median per page (corpus), per page (tables)


def page_times(data: bytes, read_page: Callable[[Any, int, Any], Any], repeat: int) -> list[float]:
    """Seconds per page (the best of ``repeat`` runs of each page) for one document."""
    import pypdfium2 as pdfium

    pdf = pdf_text.open_pdf(data)
    try:
        best = [float("inf")] * len(pdf)
        for _ in range(repeat):
            for index in range(len(pdf)):
                started = time.perf_counter()
                read_page(pdf[index], index + 1, pdfium)
                best[index] = min(best[index], time.perf_counter() - started)
        return best
    finally:
        pdf.close()


def summary(label: str, reader: str, seconds: list[float]) -> dict[str, Any]:
    ms = sorted(s * 1000 for s in seconds)
    p95 = statistics.quantiles(ms, n=20, method="inclusive")[18] if len(ms) > 1 else ms[0]
    return {
        "set": label,
        "reader": reader,
        "pages": len(ms),
        "median_ms_per_page": round(statistics.median(ms), 1),
        "p95_ms_per_page": round(p95, 1),
        "max_ms_per_page": round(ms[-1], 1),
        "total_s": round(sum(ms) / 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per document; the best counts")
    parser.add_argument("--skip-before", action="store_true", help="time only today's reader")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args(argv)
    readers: dict[str, Callable[[Any, int, Any], Any]] = {"after (bulk)": pdf_text._read_page}
    if not args.skip_before:
        readers = {"before (per rectangle)": _legacy_read_page, **readers}
    samples: dict[tuple[str, str], list[float]] = {}
    per_doc: list[dict[str, Any]] = []
    for name, data in reference_pdfs(args.corpus):
        label = "table-heavy" if name.startswith("generated/") else "corpus"
        row: dict[str, Any] = {"pdf": name, "pages": "", **{f"{r} ms/page": "" for r in readers}}
        for reader, read_page in readers.items():
            try:
                seconds = page_times(data, read_page, args.repeat)
            except DocumentError as exc:
                row["pages"] = f"({exc.kind})"
                break
            samples.setdefault((label, reader), []).extend(seconds)
            row["pages"] = len(seconds)
            row[f"{reader} ms/page"] = round(1000 * statistics.median(seconds), 1)
        per_doc.append(row)
    print(table(per_doc, "median ms per page, per document"))
    rows = [summary(label, reader, s) for (label, reader), s in samples.items()]
    for row in rows:
        target = TARGETS_MS[row["set"]]
        row["target_ms"] = target
        row["met"] = row["median_ms_per_page"] <= target and (
            row["set"] == "corpus" or row["p95_ms_per_page"] <= target
        )
    print(table(rows, "PDF text layer: ms per page (best of runs), over all pages of each set"))
    print(f"results: {save('pdf_text', {'documents': per_doc, 'summary': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
