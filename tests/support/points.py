"""Points of a small dimension with deterministic random unit vectors, for the index tests."""

from __future__ import annotations

import math
import random

from ragstream.index import Point, chunk_metadata, point_id

DIM = 16


def unit(rng: random.Random) -> list[float]:
    v = [rng.gauss(0.0, 1.0) for _ in range(DIM)]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def points(
    source: str,
    version: str,
    n: int,
    *,
    content_type: str = "application/pdf",
    team: str = "people",
    text: str = "chunk {i} of {source}",
) -> list[Point]:
    rng = random.Random(f"{source}|{version}")
    return [
        Point(
            id=point_id(source, version, i),
            vector=unit(rng),
            text=text.format(i=i, source=source),
            metadata=chunk_metadata(
                source=source,
                version=version,
                chunk_index=i,
                page=i + 1,
                title=None,
                content_type=content_type,
                bucket="docs",
                key=source.removeprefix("s3://docs/"),
                extra={"team": team, "year": "2024"},
            ),
        )
        for i in range(n)
    ]
