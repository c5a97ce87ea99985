"""The local ledger: one SQLite table, safe for several threads and processes (WAL, busy timeout)."""

from __future__ import annotations

import base64
import binascii
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..model import DocumentRecord, Status

__all__ = ["SQLiteLedger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    source    TEXT PRIMARY KEY NOT NULL,
    status    TEXT NOT NULL,
    sequencer TEXT,
    record    TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS documents_status ON documents (status, source);
"""

# One statement, so the check and the write are one atomic step. A NULL incoming sequencer makes
# ``excluded.sequencer >= documents.sequencer`` NULL, i.e. false: refused when one is stored.
_PUT = """
INSERT INTO documents (source, status, sequencer, record) VALUES (?, ?, ?, ?)
ON CONFLICT (source) DO UPDATE SET
    status = excluded.status, sequencer = excluded.sequencer, record = excluded.record
WHERE documents.sequencer IS NULL OR excluded.sequencer >= documents.sequencer
RETURNING source
"""

BUSY_TIMEOUT_MS = 30_000


def encode_cursor(source: str) -> str:
    """An opaque, URL-safe cursor that resumes after ``source``."""
    return base64.urlsafe_b64encode(source.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The source a cursor of :func:`encode_cursor` resumes after."""
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(
            f"invalid ledger cursor {cursor!r}: pass back the cursor of the previous page"
        ) from exc


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be encoded; skip to the next scalar value
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


class SQLiteLedger:
    """The ledger in one SQLite file: a row per source, the record as JSON plus indexed columns.

    Conditional write rule (the same as :class:`~ragstream.ledger.dynamodb.DynamoDBLedger`):

    ============================  ==========================  ========
    stored record                 incoming sequencer          outcome
    ============================  ==========================  ========
    none                          anything (also None)        written
    sequencer None                anything (also None)        written
    sequencer S                   None                        refused
    sequencer S                   T < S                       refused
    sequencer S                   T >= S                      written
    ============================  ==========================  ========

    Each thread gets its own connection; every connection uses WAL and a busy timeout, so
    several threads and processes can share the file.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        conn = self._conn()
        with self._lock:  # one thread at a time creates the schema; other processes wait on busy
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def get(self, source: str) -> DocumentRecord | None:
        """The record of one source, or None."""
        row = self._conn().execute("SELECT record FROM documents WHERE source = ?", (source,)).fetchone()
        return DocumentRecord.model_validate_json(row[0]) if row else None

    def put(self, record: DocumentRecord) -> bool:
        """Write ``record`` unless the stored one has a newer sequencer (see the class docstring)."""
        row = (
            self._conn()
            .execute(_PUT, (record.source, record.status.value, record.sequencer, record.model_dump_json()))
            .fetchone()
        )
        return row is not None

    def list(
        self,
        *,
        status: Status | None = None,
        prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[DocumentRecord], str | None]:
        """Records in source order, filtered by status and source prefix; the cursor resumes after a page."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        where: list[str] = []
        params: list[str | int] = []
        if status is not None:
            where.append("status = ?")
            params.append(Status(status).value)
        if prefix:
            where.append("source >= ?")
            params.append(prefix)
            upper = prefix_upper_bound(prefix)
            if upper is not None:
                where.append("source < ?")
                params.append(upper)
        if cursor:
            where.append("source > ?")
            params.append(decode_cursor(cursor))
        sql = "SELECT source, record FROM documents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY source LIMIT ?"
        params.append(limit + 1)  # one more tells whether there is a next page
        rows = self._conn().execute(sql, params).fetchall()
        page = rows[:limit]
        records = [DocumentRecord.model_validate_json(r[1]) for r in page]
        next_cursor = encode_cursor(page[-1][0]) if len(rows) > limit else None
        return records, next_cursor

    def get_many(self, sources: Sequence[str]) -> dict[str, DocumentRecord]:
        """The records of many sources, in chunks of 500 per query."""
        found: dict[str, DocumentRecord] = {}
        unique = list(dict.fromkeys(sources))
        for i in range(0, len(unique), 500):
            part = unique[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = self._conn().execute(f"SELECT record FROM documents WHERE source IN ({marks})", part)
            for (text,) in rows:
                rec = DocumentRecord.model_validate_json(text)
                found[rec.source] = rec
        return found

    def mark(self, sources: Iterable[str], run: str) -> int:
        """Stamp ``seen_run`` on existing records in one transaction per 500 sources."""
        unique = list(dict.fromkeys(sources))
        stamped = 0
        conn = self._conn()
        for i in range(0, len(unique), 500):
            part = unique[i : i + 500]
            marks = ",".join("?" * len(part))
            cursor = conn.execute(
                f"UPDATE documents SET record = json_set(record, '$.seen_run', ?) WHERE source IN ({marks})",
                [run, *part],
            )
            stamped += cursor.rowcount
        return stamped

    def close(self) -> None:
        """Close every connection this ledger opened, in any thread."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> SQLiteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL; SQLite answers SQLITE_BUSY at once (no busy handler) while another process
    creates or switches the same file, so wait for it here, within the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
