"""FAISS as a persistent embedded store: an id-mapped exact index plus a SQLite sidecar.

FAISS is a library, not a database: it holds vectors and 64-bit ids and nothing else. This module
adds what a store needs, and avoids what LangChain's and LlamaIndex's FAISS wrappers get wrong
(filters applied after a fixed candidate set, a pickled docstore, ids lost after a delete):

- ``IndexIDMap2(IndexFlatIP)`` over L2-normalised vectors: exact cosine search; a point's FAISS id is
  the top 63 bits of its uuid5 (:func:`faiss_id`), so ids survive deletes and reopenings.
- The SQLite sidecar (``<collection>.sqlite``) is the truth: per point its uuid, source, version,
  content type, text, metadata (JSON), folders and its vector. Every write is one transaction.
- A filtered search asks the sidecar for the ids that pass, and FAISS searches only among them
  (``SearchParameters(sel=IDSelectorBatch)``): ``limit`` hits whenever ``limit`` points pass.
- The FAISS file is a checkpoint of the sidecar's vectors, saved atomically (temporary file, fsync,
  rename, then the older checkpoint removed) and named by the sidecar's generation, which every
  write transaction bumps. A checkpoint is written on :meth:`FaissIndex.close` and after
  ``checkpoint_every`` changed points; on opening, a checkpoint of another generation than the
  sidecar's (a crash between the commit and the checkpoint) is rebuilt from the sidecar. A crash at
  any moment thus leaves either a consistent pair or one that is rebuilt on the next open.
- One process at a time: an OS lock (``fcntl``) on the folder; another process gets an error
  naming the process that holds it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, IndexUnavailable
from . import embedded
from .contract import Capabilities, Hit, LexicalQuery, Point, SearchFilter
from .kit import Ready, check_dimension, last_of_each, missing_collection
from .layout import version_key

if TYPE_CHECKING:
    import faiss

    from ..config import Settings

__all__ = ["FaissIndex", "FaissStore", "faiss_id", "from_settings"]

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    fid INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    version TEXT NOT NULL,
    content_type TEXT,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS points_source ON points (source, version);
CREATE INDEX IF NOT EXISTS points_type ON points (content_type);
CREATE TABLE IF NOT EXISTS folders (
    fid INTEGER NOT NULL REFERENCES points (fid) ON DELETE CASCADE,
    folder TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS folders_folder ON folders (folder, fid);
CREATE INDEX IF NOT EXISTS folders_fid ON folders (fid);
"""


def faiss_id(point_id: str) -> int:
    """The FAISS id of a point: the top 63 bits of its uuid (non-negative: FAISS uses -1 for 'none')."""
    return uuid.UUID(point_id).int >> 65


class FaissStore:
    """A folder of FAISS collections, locked for this process (one store per folder and process)."""

    def __init__(self, path: Path):
        from ..homelock import FolderLock

        self.path = Path(path)
        self._lock = FolderLock(
            self.path,
            Path(sys.argv[0]).name or "python",
            advice="an embedded index serves one process; stop that one, or use another RAGSTREAM_HOME "
            "or RAGSTREAM_INDEX_PATH",
        ).acquire()
        self._collections: dict[str, _Collection] = {}
        self._mutex = threading.Lock()

    def collection(self, name: str) -> _Collection:
        """The collection's state, opened once per store."""
        with self._mutex:
            found = self._collections.get(name)
            if found is None:
                found = self._collections[name] = _Collection(self.path, name)
            return found

    def close(self) -> None:
        """Checkpoint and close every collection, then release the folder."""
        with self._mutex:
            collections, self._collections = self._collections, {}
        for c in collections.values():
            c.close()
        self._lock.release()


class _Collection:
    """One collection: the sidecar connection, the FAISS index in memory, their generation."""

    def __init__(self, folder: Path, name: str, checkpoint_every: int = 50_000):
        self.sidecar_path = folder / f"{name}.sqlite"
        self.folder, self.name = folder, name
        self.checkpoint_every = checkpoint_every
        self.lock = threading.RLock()
        self.db: sqlite3.Connection | None = None
        self.index: faiss.Index | None = None
        self.dim: int | None = None
        self.generation = 0
        self.saved_generation = 0
        self.unsaved = 0
        if self.sidecar_path.is_file():
            self._open_db()
            self._load()

    # -- sidecar --------------------------------------------------------------------------------------
    def _open_db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.sidecar_path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(SCHEMA)
        self.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that also bumps the generation."""
        assert self.db is not None
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            self.generation += 1
            db.execute(
                "INSERT INTO meta VALUES ('generation', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(self.generation),),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _meta(self, key: str) -> str | None:
        assert self.db is not None
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # -- the FAISS index ----------------------------------------------------------------------------
    def _checkpoint_path(self, generation: int) -> Path:
        return self.folder / f"{self.name}.{generation}.faiss"

    def _load(self) -> None:
        """The checkpoint of the sidecar's generation, or a rebuild from the sidecar's vectors."""
        import faiss

        dim = self._meta("dim")
        if dim is None:
            return
        self.dim = int(dim)
        self.generation = int(self._meta("generation") or 0)
        checkpoint = self._checkpoint_path(self.generation)
        if checkpoint.is_file():
            self.index = faiss.read_index(str(checkpoint))
            self.saved_generation = self.generation
        else:
            log.info("FAISS checkpoint of %s is behind its sidecar: rebuilding it", self.name)
            self.index = self._empty()
            assert self.db is not None
            rows = self.db.execute("SELECT fid, vector FROM points").fetchall()
            if rows:
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
                self.index.add_with_ids(vectors, ids)
            self.save()
        self._remove_other_checkpoints()

    def _empty(self) -> faiss.Index:
        import faiss

        assert self.dim is not None
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def create(self, dim: int) -> None:
        if self.db is None:
            self._open_db()
        with self.transaction() as db:
            db.execute("INSERT INTO meta VALUES ('dim', ?)", (str(dim),))
        self.dim = dim
        self.index = self._empty()
        self.save()

    def changed(self, n: int) -> None:
        """Count changed points; checkpoint once enough are only in the sidecar."""
        self.unsaved += n
        if self.unsaved >= self.checkpoint_every:
            self.save()

    def save(self) -> None:
        """Write the FAISS index as the checkpoint of the current generation, atomically."""
        import faiss

        if self.index is None or self.saved_generation == self.generation:
            return
        final = self._checkpoint_path(self.generation)
        tmp = final.with_suffix(".faiss.tmp")
        faiss.write_index(self.index, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.saved_generation = self.generation
        self.unsaved = 0
        self._remove_other_checkpoints()

    def _remove_other_checkpoints(self) -> None:
        keep = self._checkpoint_path(self.saved_generation).name
        for path in self.folder.glob(f"{self.name}.*.faiss*"):
            if path.name != keep:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        with self.lock:
            try:
                self.save()
            finally:
                if self.db is not None:
                    self.db.close()
                    self.db = None
                self.index = None


class FaissIndex:
    """A collection of chunks in a FAISS index with a SQLite sidecar; writes are visible on return."""

    capabilities = Capabilities(embedded=True)

    def __init__(self, store: FaissStore, collection: str):
        self.store = store
        self.collection = collection
        self._ready = Ready()

    @property
    def _c(self) -> _Collection:
        return self.store.collection(self.collection)

    # -- collection ----------------------------------------------------------------------------------
    def ensure_collection(self, dim: int) -> None:
        """Create the collection on first use; refuse a collection of another dimension."""
        if self._ready.known(dim):
            return
        c = self._c
        with c.lock:
            if c.dim is None:
                c.create(dim)
            check_dimension(self.collection, c.dim, dim)
        self._ready.remember(dim)

    def exists(self) -> bool:
        """Whether the collection exists (its sidecar records a dimension)."""
        return self._c.dim is not None

    # -- writes ---------------------------------------------------------------------------------------
    def upsert(self, points: Sequence[Point]) -> int:
        """Write points; a point with an existing id replaces it (vector, text and metadata)."""
        if not points:
            return 0
        c = self._c
        if c.index is None or c.dim is None:
            raise missing_collection(self.collection)
        last = last_of_each(points)
        ids = np.fromiter((faiss_id(p.id) for p in last), dtype=np.int64, count=len(last))
        vectors = np.asarray([p.vector for p in last], dtype=np.float32)
        if vectors.shape[1] != c.dim:
            check_dimension(self.collection, c.dim, int(vectors.shape[1]))
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)
        rows = [
            (
                int(fid),
                p.id,
                *version_key(p.metadata),
                p.metadata.get("content_type"),
                p.text,
                json.dumps(p.metadata, default=str),
                vector.tobytes(),
            )
            for fid, p, vector in zip(ids, last, vectors, strict=True)
        ]
        folders = [
            (int(fid), folder)
            for fid, p in zip(ids, last, strict=True)
            for folder in p.metadata.get("folders") or ()
        ]
        with c.lock:
            with _sqlite_errors(), c.transaction() as db:
                db.executemany(
                    "DELETE FROM points WHERE fid = ?", [(int(fid),) for fid in ids]
                )  # cascades to folders
                db.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                db.executemany("INSERT INTO folders VALUES (?, ?)", folders)
            self._remove(c, ids)
            c.index.add_with_ids(vectors, ids)
            c.changed(len(ids))
        return len(points)

    def delete_source(
        self, source: str, *, keep_version: str | None = None, only_version: str | None = None
    ) -> None:
        """Delete the points of ``source``: all, all but ``keep_version``, or only ``only_version``."""
        c = self._c
        if c.db is None or c.index is None:
            return
        where, args = "source = ?", [source]
        if only_version:
            where, args = where + " AND version = ?", [*args, only_version]
        if keep_version:
            where, args = where + " AND version != ?", [*args, keep_version]
        with c.lock:
            fids = [r[0] for r in c.db.execute(f"SELECT fid FROM points WHERE {where}", args)]
            if not fids:
                return
            with _sqlite_errors(), c.transaction() as db:
                db.execute(f"DELETE FROM points WHERE {where}", args)
            ids = np.asarray(fids, dtype=np.int64)
            self._remove(c, ids)
            c.changed(len(ids))

    @staticmethod
    def _remove(c: _Collection, ids: np.ndarray) -> None:
        import faiss

        assert c.index is not None
        c.index.remove_ids(faiss.IDSelectorBatch(ids))

    # -- reads ----------------------------------------------------------------------------------------
    def count(self, source: str | None = None, version: str | None = None) -> int:
        """Exact number of points, of one source (and version) when given."""
        c = self._c
        if c.db is None or c.dim is None:
            return 0
        where: list[str] = ["1"]
        args: list[str] = []
        if source is not None:
            where, args = [*where, "source = ?"], [*args, source]
        if version is not None:
            where, args = [*where, "version = ?"], [*args, version]
        with c.lock:
            return int(
                c.db.execute(f"SELECT COUNT(*) FROM points WHERE {' AND '.join(where)}", args).fetchone()[0]
            )

    def versions(self) -> Counter[tuple[str, str]]:
        """Points per (source, version) in the collection."""
        c = self._c
        counts: Counter[tuple[str, str]] = Counter()
        if c.db is None or c.dim is None:
            return counts
        with c.lock:
            for source, version, n in c.db.execute(
                "SELECT source, version, COUNT(*) FROM points GROUP BY 1, 2"
            ):
                counts[(source, version)] = n
        return counts

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        flt: SearchFilter | None = None,
        lexical: LexicalQuery | None = None,
    ) -> list[Hit]:
        """Exact nearest points among those passing the filter (FAISS searches only the allowed ids)."""
        import faiss

        c = self._c
        if (flt is not None and flt.matches_nothing) or c.index is None or c.db is None:
            return []
        query = np.asarray([vector], dtype=np.float32)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        with c.lock:
            params = None
            k = min(limit, c.index.ntotal)
            sql, args = _allowed_query(flt)
            if sql:
                allowed = np.fromiter((r[0] for r in c.db.execute(sql, args)), dtype=np.int64)
                if allowed.size == 0:
                    return []
                params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))  # type: ignore[call-arg]
                k = min(k, int(allowed.size))
            if k == 0:
                return []
            scores, ids = c.index.search(query, k, params=params)
            found = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            if not found:
                return []
            marks = ",".join("?" * len(found))
            rows = {
                r[0]: r[1:]
                for r in c.db.execute(
                    f"SELECT fid, uid, text, metadata FROM points WHERE fid IN ({marks})",
                    [i for i, _ in found],
                )
            }
        return [
            Hit(id=rows[i][0], score=s, text=rows[i][1], metadata=json.loads(rows[i][2]))
            for i, s in found
            if i in rows
        ]

    def ping(self) -> None:
        """The folder is local: reachable while it is there."""
        if not self.store.path.is_dir():
            raise IndexUnavailable(f"the FAISS folder {self.store.path} is gone")

    def checkpoint(self) -> None:
        """Save the FAISS index now (it is saved on close and every ``checkpoint_every`` points)."""
        c = self._c
        with c.lock:
            c.save()

    def close(self) -> None:
        """Checkpoint, close the sidecar and release the folder (for every index of this process on it)."""
        embedded.release(self.store)
        self.store.close()
        self._ready.forget()


def _allowed_query(flt: SearchFilter | None) -> tuple[str, list[Any]]:
    """The filter as one SQL query of the ids that pass ("" for no filter): an INTERSECT of its
    conditions, each a UNION of its alternatives, each answered by an index of the sidecar."""
    if flt is None:
        return "", []
    groups: list[list[tuple[str, list[Any]]]] = []
    for group in flt.source_groups():
        groups.append(
            [
                ("SELECT fid FROM points WHERE source = ?", [value])
                if kind == "source"
                else ("SELECT fid FROM folders WHERE folder = ?", [value])
                for kind, value in group
            ]
        )
    if flt.content_type:
        groups.append([("SELECT fid FROM points WHERE content_type = ?", [flt.content_type])])
    for key, value in flt.metadata_terms().items():
        path = "$." + json.dumps(key)
        sql = "SELECT fid FROM points WHERE CAST(json_extract(metadata, ?) AS TEXT) = ?"
        groups.append([(sql, [path, value])])
    if not groups:
        return "", []
    parts: list[str] = []
    args: list[Any] = []
    for alternatives in groups:
        parts.append("SELECT fid FROM (" + " UNION ".join(q for q, _ in alternatives) + ")")
        args += [a for _, alt_args in alternatives for a in alt_args]
    return " INTERSECT ".join(parts), args


@contextmanager
def _sqlite_errors() -> Iterator[None]:
    """A full disk or an I/O error of the sidecar is transient (retried), with the reason."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise IndexUnavailable(f"the FAISS sidecar failed: {exc}") from exc


def _open_store(path: Path) -> FaissStore:
    try:
        import faiss
    except ImportError:
        raise ConfigError("RAGSTREAM_INDEX=faiss needs faiss-cpu: pip install 'ragstream[faiss]'") from None
    if "OMP_NUM_THREADS" not in os.environ:
        # one query at a time: OpenMP's thread team costs more than it saves (measured on 2 busy cores:
        # 20 ms p50 at 1k points with the default team, 0.1 ms with one thread)
        faiss.omp_set_num_threads(1)
    return FaissStore(path)


def from_settings(settings: Settings) -> FaissIndex:
    """The FAISS folder ``index_path`` (default ``home/faiss``), one store per folder and process."""
    store = embedded.acquire("faiss", Path(settings.index_location), _open_store)
    return FaissIndex(store, settings.collection)
