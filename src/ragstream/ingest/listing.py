"""The listing diff of a sync: what a folder or bucket prefix holds against what the ledger holds.

Pure functions over the listing, the ledger's records and (for a repair) the index's point counts
per version; the pipeline applies what they find.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..blobs import Unlisted
from ..model import DocumentRecord, SourceRef, Status
from ..sources import deletion
from . import records

__all__ = ["Listing", "extra_points", "missing_points", "stray_versions", "under"]


@dataclass
class Listing:
    """One listing, split: what can be read, and what the listing met but cannot read."""

    listed: list[SourceRef]
    unlisted: list[Unlisted]

    @classmethod
    def of(cls, entries: Iterable[SourceRef | Unlisted]) -> Listing:
        listed: list[SourceRef] = []
        unlisted: list[Unlisted] = []
        for entry in entries:
            (unlisted if isinstance(entry, Unlisted) else listed).append(entry)  # type: ignore[arg-type]
        return cls(listed, unlisted)

    def gone(self, known: Mapping[str, DocumentRecord]) -> list[SourceRef]:
        """Deletions for the ledger's sources that the listing no longer holds. What lies under a
        folder that cannot be read is unknown, so never taken as deleted."""
        seen = {r.source for r in self.listed} | {u.source for u in self.unlisted}
        hidden = tuple(u.source for u in self.unlisted if u.folder)
        return [
            deletion(rec.source)
            for rec in known.values()
            if rec.source not in seen
            and rec.status is not Status.DELETED
            and not rec.source.startswith(hidden)
        ]


def under(root: str, base: str, found: Iterable[DocumentRecord]) -> dict[str, DocumentRecord]:
    """The ledger's records that the sync of ``root`` answers for: one local file, only itself."""
    return {rec.source: rec for rec in found if "://" in root or base.endswith("/") or rec.source == base}


def stray_versions(
    counts: Mapping[tuple[str, str], int], known: Mapping[str, DocumentRecord], base: str
) -> list[tuple[str, str, int]]:
    """(source, version, points) of every version in the index that the ledger does not hold."""
    return [
        (source, version, n)
        for (source, version), n in sorted(counts.items())
        if source.startswith(base) and records.stray(known.get(source), version)
    ]


def missing_points(counts: Mapping[tuple[str, str], int], known: Mapping[str, DocumentRecord]) -> set[str]:
    """The indexed sources with fewer points in the index than the ledger says they have."""
    return {
        rec.source
        for rec in known.values()
        if rec.status is Status.INDEXED and counts.get((rec.source, rec.version or ""), 0) < rec.chunks
    }


def extra_points(
    counts: Mapping[tuple[str, str], int], known: Mapping[str, DocumentRecord]
) -> list[tuple[str, str, int]]:
    """(source, version, excess) of the indexed versions with more points than the ledger's chunks:
    left by an earlier chunking of the same bytes (see ``batch._rechunked``)."""
    found = []
    for rec in known.values():
        n = counts.get((rec.source, rec.version or ""), 0)
        if rec.status is Status.INDEXED and rec.version and n > rec.chunks:
            found.append((rec.source, rec.version, n - rec.chunks))
    return found
