"""Wall time of OpenAI embedding round trips by concurrency, against the local OpenAI peer.

5,000 chunks go through ragstream's OpenAI embedder (``RAGSTREAM_OPENAI_CONCURRENCY`` 1, 4, 8) to
``tests/peers/openai_server.py`` answering each request after a fixed latency (300 ms by default),
with a deterministic 429 rate (every Nth request, Retry-After given). The vectors are 64-dimensional
so that the peer's own work stays small next to the latency; what is measured is round trips.

    .venv/bin/python bench/embed_concurrency.py [--chunks 5000] [--latency 0.3] [--every 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import save, table

from ragstream.config import Settings
from ragstream.embeddings import build_embeddings
from tests.peers.openai_server import OpenAIServer


def run(concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    """Embed ``args.chunks`` texts at one concurrency; the figures of that run."""
    texts = [
        f"chunk {i} of a quarterly filing, revenue and operating income by segment"
        for i in range(args.chunks)
    ]
    with OpenAIServer(
        delay=args.latency, rate_limit_every=args.every, retry_after=args.retry_after, retry_after_ms=None
    ) as server:
        settings = Settings(
            embedding_provider="openai",
            openai_api_key="sk-bench",
            openai_base_url=server.url + "/v1",
            embedding_dimensions=64,
            embedding_batch_size=args.batch,
            openai_concurrency=concurrency,
            openai_max_retries=10,
        )
        embedder = build_embeddings(settings)
        started = time.perf_counter()
        vectors = embedder.embed_documents(texts)
        wall = time.perf_counter() - started
        assert len(vectors) == len(texts)
        return {
            "concurrency": concurrency,
            "chunks": len(texts),
            "requests": len(server.requests),
            "429s": len(server.throttled),
            "peak_in_flight": server.peak_in_flight,
            "wall_s": round(wall, 2),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=128, help="texts per request (the default setting)")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per request at the peer")
    parser.add_argument("--every", type=int, default=10, help="429 to every Nth request (0: none)")
    parser.add_argument("--retry-after", type=float, default=1.0, help="the 429's Retry-After, seconds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args(argv)
    rows = [run(c, args) for c in args.concurrency]
    base = rows[0]["wall_s"]
    for row in rows:
        row["speed-up"] = f"{base / row['wall_s']:.1f}x"
    title = (
        f"OpenAI embeddings: {args.chunks} chunks, {args.batch} per request, {args.latency * 1000:.0f} ms "
        f"per request, 429 to every {args.every}th with Retry-After {args.retry_after:g} s"
    )
    print(table(rows, title))
    print(f"results: {save('embed_concurrency', {'settings': vars(args), 'runs': rows})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
