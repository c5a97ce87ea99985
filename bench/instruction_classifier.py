"""How often the extractive answerer's instruction classifier flags ordinary text (false positives).

Every sentence of the text-like files of the shared test corpus, of ``examples/`` and of a BEIR
corpus (SciFact: scientific abstracts) is split as the extractive answerer splits chunks, and
classified by :func:`ragstream.untrusted.is_instruction`. Prints the count, the rate, the first
flagged sentences, and the classifier's speed.

    .venv/bin/python bench/instruction_classifier.py [--beir ../shared/qa/scifact] [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ragstream.extractive import MIN_SENTENCE_WORDS, segments
from ragstream.untrusted import is_instruction

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = (".md", ".txt", ".html", ".csv", ".eml")


def sentences(text: str) -> list[str]:
    out = []
    for sentence, heading in segments(text):
        if not heading and len(sentence.split()) >= MIN_SENTENCE_WORDS:
            out.append(sentence)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", type=Path, default=ROOT.parent / "shared" / "qa" / "scifact")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()

    texts: list[tuple[str, str]] = []
    for folder in (args.corpus, ROOT / "examples"):
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.suffix in TEXT_SUFFIXES and path.is_file():
                texts.append((path.name, path.read_text(encoding="utf-8", errors="replace")))
    corpus = args.beir / "corpus.jsonl"
    if corpus.is_file():
        for line in corpus.read_text(encoding="utf-8").splitlines():
            doc = json.loads(line)
            text = f"{doc.get('title', '')}. {doc.get('text', '')}"
            texts.append((f"{args.beir.name}:{doc.get('_id')}", text))

    all_sentences = [(name, s) for name, text in texts for s in sentences(text)]
    started = time.perf_counter()
    flagged = [(name, s) for name, s in all_sentences if is_instruction(s)]
    elapsed = time.perf_counter() - started
    n = len(all_sentences)
    print(f"documents          {len(texts)}")
    print(f"sentences          {n}")
    print(f"flagged            {len(flagged)} ({100 * len(flagged) / max(n, 1):.3f}%)")
    print(f"classifier         {1e6 * elapsed / max(n, 1):.1f} µs per sentence")
    for name, sentence in flagged[:20]:
        print(f"  {name}: {sentence[:160]}")


if __name__ == "__main__":
    main()
