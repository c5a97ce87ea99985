"""The lexical side of hybrid retrieval: text -> a BM25 sparse vector, in pure Python.

The same encoder runs in the ingest image (chunks) and in the query image (questions), whichever the
embedder, so it depends on nothing but the standard library: no model, no download, no tokenizer
package (the query image has none), and it imports in well under a millisecond.

- **Terms**: lower-cased runs of letters and digits (Unicode-aware), English stop words dropped, each
  word reduced by a light English suffix stemmer (plurals, -ing, -ed, -ly, -ation...), so "revenues"
  meets "revenue" and "licensing" meets "licensed". Codes stay whole as their pieces: ``INV-1234``
  is the terms ``inv`` and ``1234``, plus the joined ``inv1234`` (a code typed without its dash).
- **Ids**: a term's id is the CRC-32 of its UTF-8 bytes, below 2^31 (no vocabulary to ship; sparse
  indices of Qdrant and Milvus are unsigned 32-bit). Two terms that share an id are a rare collision
  that only blurs those two terms.
- **Weights**: a document (chunk) term weighs BM25's saturated, length-normalised term frequency
  ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))``; the engine multiplies it by the
  term's inverse document frequency over the collection (Qdrant's ``Modifier.IDF``), which only the
  collection knows. A query term weighs 1, once, so the score is BM25's sum over the query's terms.
  ``avg_len`` is a constant (a chunk's typical number of terms), as the collection's own average is
  not known while it is being written.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections import Counter

__all__ = ["AVG_LEN", "K1", "B", "encode_document", "encode_query", "terms"]

#: BM25's term-frequency saturation and length normalisation (Lucene's defaults).
K1 = 1.2
B = 0.75
#: Terms in a typical chunk (about 200 word pieces, stop words dropped).
AVG_LEN = 90.0

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CODE = re.compile(r"[^\W_]+(?:[-/.][^\W_]+)+", re.UNICODE)
_ID_MASK = 0x7FFFFFFF

STOP_WORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
    ]
)

# (suffix, replacement, minimum stem length left), tried in order; the first that applies wins
_SUFFIXES: tuple[tuple[str, str, int], ...] = (
    ("ational", "ate", 3),
    ("ization", "ize", 3),
    ("fulness", "ful", 3),
    ("iveness", "ive", 3),
    ("ousness", "ous", 3),
    ("ations", "ate", 3),
    ("ation", "ate", 3),
    ("ements", "", 4),
    ("ement", "", 4),
    ("ments", "", 4),
    ("ment", "", 4),
    ("ities", "", 4),
    ("ity", "", 4),
    ("ness", "", 4),
    ("ingly", "", 4),
    ("edly", "", 4),
    ("ings", "", 4),
    ("ing", "", 3),
    ("ied", "y", 2),
    ("ies", "y", 2),
    ("ed", "", 3),
    ("ly", "", 4),
    ("sses", "ss", 2),
    ("es", "e", 3),
    ("s", "", 3),
)


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light English suffix stemmer: one suffix off, then a doubled final consonant undone."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, replacement, keep in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= keep:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word
            base = word[: len(word) - len(suffix)] + replacement
            if (
                suffix in ("ing", "ed", "ings")
                and len(base) > 3
                and base[-1] == base[-2]
                and base[-1] not in "aeiouslz"
            ):
                base = base[:-1]  # "planned" -> "plan", "running" -> "run"
            return _drop_e(base)
    return _drop_e(word)


def _drop_e(word: str) -> str:
    """A final silent e goes, so that "rate", "rates" and "rated" meet."""
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def terms(text: str) -> list[str]:
    """The index terms of ``text``, in order (with repeats)."""
    lowered = text.lower()
    out = [stem(w) for w in _WORD.findall(lowered) if w not in STOP_WORDS]
    out += [re.sub(r"[-/.]", "", code) for code in _CODE.findall(lowered)]
    return out


@functools.lru_cache(maxsize=65536)
def term_id(term: str) -> int:
    """The sparse index of a term."""
    return zlib.crc32(term.encode("utf-8")) & _ID_MASK


def encode_document(text: str) -> tuple[list[int], list[float]]:
    """BM25 document-side weights of ``text``: (ids ascending, weights)."""
    counts = _id_counts(terms(text))
    length = sum(counts.values())
    norm = K1 * (1 - B + B * length / AVG_LEN)
    ids = sorted(counts)
    return ids, [round(counts[i] * (K1 + 1) / (counts[i] + norm), 5) for i in ids]


def encode_query(text: str) -> tuple[list[int], list[float]]:
    """A query's sparse vector: each distinct term weighs 1 (ids ascending)."""
    ids = sorted(_id_counts(terms(text)))
    return ids, [1.0] * len(ids)


def _id_counts(words: list[str]) -> Counter[int]:
    return Counter(term_id(w) for w in words)
