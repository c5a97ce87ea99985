"""The offline answer: the retrieved chunks' sentences that hold the question's key terms, or none.

No language model reads the sources here, so the answerer cannot know that a sentence *answers* a
question; it can know that a sentence is *about* it. A sentence is a candidate only when the
question's key terms are in it or in its document context (the chunk's section heading, the heading
in force within the chunk, the document's name):

- **numbers and codes** (years, quantities, ``X200``, ``Q3``): all, in the sentence or the context;
- **names** (capitalised words, acronyms): all, there or in the text of the hits of the sentence's
  document (a sentence about "Roberts" may say "he");
- **content words** (stop words and answer-type words such as "how long", "size" left out): at least
  :data:`MIN_COVERAGE` of them in the sentence or the context; the word a "which"/"what" asks about
  ("which colours") counts only where it is held.

Words match after light normalisation: lower case, thousands separators dropped, "third quarter"
read as ``Q3``, the BM25 encoder's suffix stemmer (``lexical.py``) with the past forms of common
irregular verbs, and a shared prefix of five letters or more. Candidates are ranked by the share of
key terms they hold; only the best :data:`EMBED_CANDIDATES` are embedded and compared with the
question (one small batch), and the best must clear ``min_answer_score``. Otherwise there is no answer.

Nothing here checks that a sentence answers the question: an answer is quoted *on topic*, which is
what ``Answer.grounding == "key_terms"`` says. The thresholds were chosen on the ``calibrate`` half
of ``bench/data/abstention`` and measured on the other half (``bench/abstention.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .model import SearchHit
from .untrusted import is_instruction, neutralise

__all__ = [
    "EMBED_CANDIDATES",
    "MAX_SENTENCES",
    "MIN_COVERAGE",
    "MIN_SENTENCE_WORDS",
    "Support",
    "Terms",
    "coverage",
    "key_terms",
    "normalise",
    "segments",
    "stem",
    "supporting_sentences",
]

#: Sentences shorter than this are not candidates (fragments answer nothing).
MIN_SENTENCE_WORDS = 4
#: At most this many sentences in an answer, each within :data:`SENTENCE_MARGIN` of the best one.
MAX_SENTENCES = 3
SENTENCE_MARGIN = 0.12
#: The share of the question's content words a candidate and its context must hold (calibrated).
MIN_COVERAGE = 0.8
#: Candidates embedded and compared with the question, best lexical first.
EMBED_CANDIDATES = 3
#: A sentence is quoted up to this many characters.
SENTENCE_CHARS = 600

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*(?:[-.,:/][^\W_]+)*", re.UNICODE)
#: A sentence ends at . ! or ?, maybe closed by a quote or a footnote marker ([7]), before a space
#: and something that is not lower case.
_SENTENCE_END = re.compile(
    r"(?:(?<=[.!?])|(?<=[.!?][\"'”’)])|(?<=[.!?]\[\d\])|(?<=[.!?]\[\d\d\])|(?<=[.!?]\[\d\d\d\]))\s+(?=[^\sa-z])"
)
_QUARTER = re.compile(
    r"\b(first|second|third|fourth|1st|2nd|3rd|4th)\s+(?:fiscal\s+|financial\s+)?(quarter|half)\b", re.I
)
_ORDINAL = {"first": 1, "second": 2, "third": 3, "fourth": 4, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4}
#: Past forms of common irregular verbs, read as their base form.
_IRREGULAR = {
    past: base
    for base, forms in {
        "win": "won",
        "begin": "began begun",
        "spend": "spent",
        "sell": "sold",
        "buy": "bought",
        "pay": "paid",
        "grow": "grew grown",
        "fall": "fell fallen",
        "rise": "rose risen",
        "hold": "held",
        "write": "wrote written",
        "lead": "led",
        "meet": "met",
        "send": "sent",
        "build": "built",
        "bring": "brought",
        "choose": "chose chosen",
        "become": "became",
        "leave": "left",
        "lose": "lost",
        "know": "knew known",
        "run": "ran",
        "teach": "taught",
        "think": "thought",
        "see": "saw seen",
        "speak": "spoke spoken",
        "drive": "drove driven",
        "fly": "flew flown",
        "break": "broke broken",
        "shut": "shut",
        "cost": "cost",
        "set": "set",
    }.items()
    for past in forms.split()
}
_TERMINAL = (".", "!", "?", ":", ";", '"', "'", ")", "”")


def _wordlist(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOP_WORDS = _wordlist(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers herself him himself his how i if in into is it its itself just me more
    most my myself no nor not now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom whose why will
    with would you your yours yourself yourselves s t get gets got make made give given take taken
    tell say said please also come comes came go goes went put puts let keep keeps"""
)
#: Words that name the kind of answer wanted, not a fact the source must repeat.
ANSWER_WORDS = _wordlist(
    """many much long large big small size often old far high tall wide deep heavy soon quickly
    kind type sort number amount quantity total value figure percentage percent share name named
    called date time year day place way reason happen happened happens exactly approximately roughly
    usually currently"""
)


@dataclass(frozen=True)
class Terms:
    """A question's key terms, stemmed: numbers and codes, names (runs of capitalised words), other
    content words, and the word a "which"/"what" asks about (it counts only where a sentence has it:
    "which colours" is answered by "black and steel")."""

    numbers: tuple[str, ...]
    names: tuple[tuple[str, ...], ...]
    words: tuple[str, ...]
    asked: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.numbers or self.names or self.words or self.asked)


@dataclass(frozen=True)
class Support:
    """A sentence picked to answer: which hit it comes from, the sentence, and its similarity."""

    hit: int
    sentence: str
    score: float


def normalise(text: str) -> str:
    """ "third quarter" as ``Q3``, "first half" as ``H1``: one term, compared like a number."""
    return _QUARTER.sub(lambda m: f"{m.group(2)[0].upper()}{_ORDINAL[m.group(1).lower()]}", text)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The BM25 encoder's stemmer (:func:`ragstream.lexical.stem`), after the question-side
    normalisation: possessives off, thousands separators out, irregular past forms to their base."""
    from .lexical import stem as lexical_stem

    w = word.lower().replace("’", "'")
    w = w.removesuffix("'s").rstrip("'")
    if w[:1].isdigit():
        w = w.replace(",", "")  # 1,240 as 1240
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    return lexical_stem(w)


def _stems(text: str) -> set[str]:
    return {stem(m.group()) for m in _WORD.finditer(normalise(text))}


def key_terms(question: str) -> Terms:
    """The terms of ``question`` a supporting sentence must hold (see the module's docstring)."""
    numbers: list[str] = []
    names: list[list[str]] = []
    words: list[str] = []
    asked: list[str] = []
    previous, in_name = "", False
    for i, match in enumerate(_WORD.finditer(normalise(question))):
        token = match.group()
        low = token.lower().removesuffix("'s").removesuffix("’s")
        after, previous = previous, low
        if low in STOP_WORDS or low in ANSWER_WORDS:
            in_name = False
            continue
        term = stem(token)
        if any(c.isdigit() for c in token):
            numbers.append(term)
            in_name = False
        elif (token[:1].isupper() and i > 0) or (len(token) > 1 and token.isupper()):
            if in_name:
                names[-1].append(term)
            else:
                names.append([term])
            in_name = True
        elif len(low) > 1:
            asks = after in ("which", "what") and not low.endswith("ed")  # not "what caused"
            (asked if asks else words).append(term)
            in_name = False
    return Terms(
        tuple(dict.fromkeys(numbers)),
        tuple(tuple(dict.fromkeys(n)) for n in names),
        tuple(dict.fromkeys(words)),
        tuple(dict.fromkeys(asked)),
    )


def _holds(term: str, stems: set[str]) -> bool:
    """``term`` is among ``stems``, or shares with one a prefix of at least five letters."""
    if term in stems:
        return True
    if len(term) < 5 or not term.isalpha():
        return False
    return any(len(s) >= 5 and (s.startswith(term) or term.startswith(s)) for s in stems)


def coverage(terms: Terms, sentence: set[str], context: set[str], document: set[str]) -> float:
    """The share of content words held, or -1 when a number or a name is missing, or when the
    sentence itself holds none of the question's words (its context alone is not about the question)."""
    own = terms.words + terms.asked or terms.numbers + tuple(t for name in terms.names for t in name)
    if own and not any(_holds(t, sentence) for t in own):
        return -1.0
    near = sentence | context
    if not all(_holds(t, near) for t in terms.numbers):
        return -1.0
    for name in terms.names:  # "Iwan Roberts": the sentence may say "he", the document names him
        if not all(_holds(t, near) or _holds(t, document) for t in name):
            return -1.0
    asked = sum(_holds(t, near) for t in terms.asked)
    if not terms.words and not asked:
        return 1.0
    return (sum(_holds(t, near) for t in terms.words) + asked) / (len(terms.words) + asked)


def segments(text: str) -> list[tuple[str, bool]]:
    """The sentences of a chunk, each with whether it is a heading (a line of its own, short, with no
    closing punctuation). A line that starts in lower case continues the one before (PDF text breaks
    lines inside sentences)."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        if blocks and _continues(blocks[-1][-1], line):
            blocks[-1].append(line)
        else:
            blocks.append([line])
    out: list[tuple[str, bool]] = []
    for block in blocks:
        joined = " ".join(block)
        if len(block) == 1 and not joined.endswith(_TERMINAL) and len(joined.split()) <= 14:
            out.append((joined, True))
            continue
        out += [(s, False) for s in _SENTENCE_END.split(joined) if s]
    return out


def _continues(previous: str, line: str) -> bool:
    """Whether ``line`` goes on with the sentence ``previous`` left open."""
    if line[:1].islower():
        return True
    if previous.endswith(_TERMINAL):
        return False
    last = previous.rsplit(" ", 1)[-1]
    return last.lower() in STOP_WORDS or (line[:1].isdigit() and last[-1:].islower())


def document_name(source: str) -> str:
    """A source's file name without extension and separators: ``acme-q3-2024.md`` -> ``acme q3 2024``."""
    name = source.rstrip("/").rsplit("/", 1)[-1]
    if "." in name.strip("."):
        name = name.rsplit(".", 1)[0]
    return re.sub(r"[_\-.+]+|%20", " ", name)


def supporting_sentences(
    question: str,
    qvec: Sequence[float],
    hits: Sequence[SearchHit],
    embed: Callable[[list[str]], list[list[float]]],
    *,
    min_score: float,
    exclude: Callable[[str], bool] = lambda _: False,
) -> list[Support]:
    """The sentences of ``hits`` that support an answer to ``question``, best first; empty when none
    holds its key terms or none is similar enough (``min_score``). ``embed`` embeds the few best
    candidates; ``exclude`` drops sentences never to be quoted."""
    terms = key_terms(question)
    if not terms:
        return []
    every = (*terms.numbers, *(t for name in terms.names for t in name), *terms.words, *terms.asked)
    scored: list[tuple[float, float, int, int, str]] = []  # (coverage, own share, -position, hit, sentence)
    position = 0
    documents: dict[str, set[str]] = {}  # what the hits of one document say: where names are looked up
    for hit in hits:
        documents.setdefault(hit.source, _stems(document_name(hit.source))).update(_stems(hit.text))
    for i, hit in enumerate(hits):
        chunk = documents[hit.source]
        base = _stems(document_name(hit.source)) | _stems(hit.title or "")
        heading: set[str] = set()
        for sentence, is_heading in segments(hit.text):
            position += 1
            if is_heading:
                heading = _stems(sentence)
                continue
            if len(sentence.split()) < MIN_SENTENCE_WORDS:
                continue
            stems = _stems(sentence)
            share = coverage(terms, stems, base | heading, chunk)
            if share >= MIN_COVERAGE and not is_instruction(sentence) and not exclude(sentence):
                own = sum(_holds(t, stems) for t in every) / len(every)  # ties: the sentence's own terms
                scored.append((share, own, -position, i, neutralise(sentence[:SENTENCE_CHARS])))
    if not scored:
        return []
    scored.sort(reverse=True)
    unique: list[tuple[int, str]] = []
    for _, _, _, i, sentence in scored:
        if all(sentence != s for _, s in unique):
            unique.append((i, sentence))
        if len(unique) == EMBED_CANDIDATES:
            break
    import numpy as np

    vectors = np.asarray(embed([s for _, s in unique]), dtype=np.float32)
    q = np.asarray(qvec, dtype=np.float32)
    sims = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q) + 1e-9)
    order = [int(j) for j in np.argsort(-sims, kind="stable")]
    best = float(sims[order[0]])
    if best < min_score:
        return []
    floor = max(min_score, best - SENTENCE_MARGIN)
    return [Support(unique[j][0], unique[j][1], float(sims[j])) for j in order if sims[j] >= floor][
        :MAX_SENTENCES
    ]
