"""Every non-PDF, non-image format through unstructured's partitioners, offline.

unstructured imports lazily here only (the query image never imports a parser). Its text-type
heuristics (Title vs NarrativeText) call a spaCy pipeline, and when the model ``en_core_web_sm`` is
not installed unstructured downloads it at run time. We never let it: ``_install_offline_nlp``
replaces unstructured's model loader with one that uses an installed ``en_core_web_sm`` if there
is one, and otherwise a blank English spaCy pipeline (rule-based sentencizer and a small
lexicon/suffix verb tagger: the only things the heuristics read). Its installer is replaced by a
function that raises, so no code path can fetch a model, locally, in CI or in the image.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from ..errors import CorruptDocument, EmptyDocument, EncryptedDocument, TooLarge, UnsupportedFormat
from ..model import Element
from .limits import table_is_ragged

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["decode_text", "partition"]

_EMAIL_KINDS = {"eml", "msg"}
_DROP_CATEGORIES = {"PageBreak"}
_VERBS = {
    # be / have / do / modals, and common verbs with their inflections.
    "be", "am", "is", "are", "was", "were", "been", "being", "have", "has", "had", "having", "do",
    "does", "did", "done", "can", "could", "will", "would", "shall", "should", "may", "might", "must",
    "get", "gets", "got", "make", "makes", "made", "go", "goes", "went", "gone", "take", "takes",
    "took", "taken", "see", "sees", "saw", "seen", "come", "comes", "came", "know", "knows", "knew",
    "known", "give", "gives", "gave", "given", "find", "finds", "found", "think", "thinks", "thought",
    "tell", "tells", "told", "become", "becomes", "became", "show", "shows", "shown", "leave", "leaves",
    "left", "feel", "feels", "felt", "put", "puts", "bring", "brings", "brought", "begin", "begins",
    "began", "keep", "keeps", "kept", "hold", "holds", "held", "write", "writes", "wrote", "written",
    "stand", "stands", "stood", "hear", "hears", "heard", "let", "lets", "mean", "means", "meant",
    "set", "sets", "meet", "meets", "met", "run", "runs", "ran", "pay", "pays", "paid", "sit", "sits",
    "sat", "speak", "speaks", "spoke", "lie", "lies", "lay", "lead", "leads", "led", "read", "reads",
    "grow", "grows", "grew", "lose", "loses", "lost", "fall", "falls", "fell", "send", "sends", "sent",
    "build", "builds", "built", "understand", "understands", "understood", "draw", "draws", "drew",
    "break", "breaks", "broke", "spend", "spends", "spent", "rise", "rises", "rose", "drive", "drives",
    "drove", "buy", "buys", "bought", "wear", "wears", "wore", "choose", "chooses", "chose", "seek",
    "seeks", "sought", "say", "says", "said", "use", "uses", "need", "needs", "want", "wants", "provide",
    "provides", "include", "includes", "allow", "allows", "require", "requires", "contain", "contains",
    "help", "helps", "work", "works", "seem", "seems", "try", "tries", "ask", "asks", "call", "calls",
    "apply", "applies", "add", "adds", "describe", "describes", "support", "supports", "create",
    "creates", "remain", "remains", "follow", "follows", "consider", "considers", "receive",
    "receives", "live", "lives", "believe", "believes", "please", "thank", "thanks", "join", "love",
}  # fmt: skip
_SUBJECTS = {"i", "you", "he", "she", "it", "we", "they", "who", "which", "that", "this", "there"}
_NOT_VERBS = {
    "thing", "things", "during", "morning", "evening", "nothing", "something", "anything",
    "everything", "ceiling", "building", "red", "bed", "hundred", "seed", "speed",
}  # fmt: skip


# -- offline NLP for unstructured's heuristics ----------------------------------------------------


def _verb_tagger(doc: Any) -> Any:
    """Tag likely verbs VB/VBD/VBG/VBZ; everything else NN. Enough for unstructured's contains_verb."""
    prev = ""
    for token in doc:
        word = token.lower_
        tag = "NN"
        if word in _VERBS:
            tag = "VB"
        elif token.is_alpha and len(word) > 4 and word not in _NOT_VERBS:
            if word.endswith("ed"):
                tag = "VBD"
            elif word.endswith("ing"):
                tag = "VBG"
            elif word.endswith("s") and not word.endswith("ss") and prev in _SUBJECTS:
                tag = "VBZ"
        token.tag_ = tag
        prev = word
    return doc


@lru_cache(maxsize=1)
def _offline_nlp() -> Any:
    import spacy
    from spacy.language import Language

    try:
        return spacy.load("en_core_web_sm", exclude=["ner", "lemmatizer", "attribute_ruler"])
    except (OSError, ImportError):
        pass
    if "ragstream_verb_tagger" not in Language.factories:
        Language.component("ragstream_verb_tagger", func=_verb_tagger)
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("ragstream_verb_tagger")
    return nlp


def _no_download() -> None:
    raise RuntimeError(
        "ragstream: run-time model downloads are disabled (install en_core_web_sm at build time)"
    )


@lru_cache(maxsize=1)
def _install_offline_nlp() -> None:
    # Telemetry off before unstructured is imported (it reads these at import and per call).
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    from unstructured.nlp import tokenize

    tokenize._get_nlp = _offline_nlp  # type: ignore[assignment]
    tokenize._install_spacy_model = _no_download  # type: ignore[assignment]


# -- text decoding ---------------------------------------------------------------------------------


def decode_text(data: bytes) -> str:
    """Decode text of an unknown encoding: BOMs, UTF-8, then charset detection, then cp1252."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is not None and best.encoding:
            return str(best)
    except ImportError:  # pragma: no cover
        pass
    return data.decode("cp1252", "replace")


# -- partitioning ----------------------------------------------------------------------------------


def partition(
    kind: str, data: bytes, name: str, settings: Settings | None = None
) -> tuple[list[Element], dict[str, Any]]:
    """Partition one document of a detected ``kind``; returns elements and document metadata.

    ``settings`` gives the limits (table width); without it, the defaults.
    """
    if kind == "json":
        return _partition_json(data), {}
    if kind in {"doc", "ppt"}:
        data, kind = _legacy_to_text(kind, data), "txt"
    if kind == "eml":
        _check_email_encryption(data)
    _install_offline_nlp()
    try:
        raw = _partition(kind, data, name, settings or _default_settings())
    except (UnsupportedFormat, EmptyDocument, EncryptedDocument, CorruptDocument, TooLarge):
        raise
    except Exception as exc:  # parsers raise anything on malformed input: translate, keep the reason
        reason = f"{type(exc).__name__}: {str(exc)[:200]}".rstrip(": ")
        raise CorruptDocument(f"{kind.upper()} file could not be parsed ({reason})") from None
    return _to_elements(kind, raw)


def _default_settings() -> Settings:
    from ..config import Settings

    return Settings()


def _partition(kind: str, data: bytes, name: str, settings: Settings) -> list[Any]:
    # Partitioners get file objects; the pandoc-based ones (odt, rtf, epub) write only to tempfile's dir.
    # languages=[""] skips unstructured's language detection (~10 ms a document, and we do not use it)
    common: dict[str, Any] = {"metadata_filename": name, "languages": [""]}
    if kind in {"html", "md", "txt", "xml"}:
        text = decode_text(data)
        if not text.strip():
            raise EmptyDocument(f"{kind.upper()} file holds no text")
        if kind == "html":
            from unstructured.partition.html import partition_html

            if html_depth(text) > HTML_MAX_DEPTH:  # lxml would silently drop what lies deeper
                from unstructured.partition.text import partition_text

                return partition_text(text=html_text(text), **common)
            return partition_html(text=text, **common)
        if kind == "md":
            from unstructured.partition.md import partition_md

            return partition_md(text=text, **common)
        if kind == "xml":
            from unstructured.partition.xml import partition_xml

            return partition_xml(text=text, **common)
        from unstructured.partition.text import partition_text

        return partition_text(text=text, **common)
    if kind in {"csv", "tsv"}:
        text = decode_text(data)
        if not text.strip():
            raise EmptyDocument(f"{kind.upper()} file holds no rows")
        if table_is_ragged(text, "," if kind == "csv" else "\t", settings):
            # rows wider than the header (common in exports): a table parser refuses them, text does not
            from unstructured.partition.text import partition_text

            return partition_text(text=text, **common)
        if kind == "csv":
            from unstructured.partition.csv import partition_csv

            return partition_csv(file=io.BytesIO(text.encode("utf-8")), **common)
        from unstructured.partition.tsv import partition_tsv

        return partition_tsv(file=io.BytesIO(text.encode("utf-8")), **common)
    file = io.BytesIO(data)
    if kind == "docx":
        from unstructured.partition.docx import partition_docx

        return partition_docx(file=file, **common)
    if kind == "pptx":
        from unstructured.partition.pptx import partition_pptx

        return partition_pptx(file=file, **common)
    if kind in {"xlsx", "xls"}:
        from unstructured.partition.xlsx import partition_xlsx

        return partition_xlsx(file=file, **common)
    if kind == "odt":
        from unstructured.partition.odt import partition_odt

        return partition_odt(file=file, **common)
    if kind == "rtf":
        from unstructured.partition.rtf import partition_rtf

        return partition_rtf(file=file, **common)
    if kind == "epub":
        from unstructured.partition.epub import partition_epub

        return partition_epub(file=file, **common)
    if kind == "eml":
        from unstructured.partition.email import partition_email

        return partition_email(file=file, process_attachments=False, **common)
    if kind == "msg":
        from unstructured.partition.msg import partition_msg

        return partition_msg(file=file, process_attachments=False, **common)
    raise UnsupportedFormat(f"no extractor for {kind} files")


def _to_elements(kind: str, raw: list[Any]) -> tuple[list[Element], dict[str, Any]]:
    elements: list[Element] = []
    doc_meta: dict[str, Any] = {}
    sheets: list[str] = []
    for item in raw:
        category = str(getattr(item, "category", "") or "NarrativeText")
        text = str(getattr(item, "text", "") or "").strip()
        if category in _DROP_CATEGORIES or not text:
            continue
        meta = item.metadata
        extra: dict[str, Any] = {}
        page = getattr(meta, "page_number", None)
        sheet = getattr(meta, "page_name", None)
        if sheet:
            extra["sheet"] = str(sheet)
            if sheet not in sheets:
                sheets.append(str(sheet))
        html = getattr(meta, "text_as_html", None)
        if html and category == "Table":
            extra["text_as_html"] = str(html)
        depth = getattr(meta, "category_depth", None)
        if depth is not None:
            extra["category_depth"] = depth
        if kind in _EMAIL_KINDS:
            for ours, theirs in (
                ("subject", "subject"),
                ("sender", "sent_from"),
                ("to", "sent_to"),
                ("message_id", "email_message_id"),
            ):
                value = getattr(meta, theirs, None)
                if value:
                    value = ", ".join(value) if isinstance(value, list) else str(value)
                    extra[ours] = value
                    doc_meta.setdefault(ours, value)
            date = getattr(meta, "last_modified", None)
            if date:
                extra["date"] = str(date)
                doc_meta.setdefault("date", str(date))
        if kind in {"xlsx", "xls"}:
            page = None  # sheets are not pages: the sheet name says where the text is
        elements.append(
            Element(
                text=text,
                type=category,
                page=int(page) if isinstance(page, int) and page >= 1 else None,
                title=str(sheet) if sheet and kind in {"xlsx", "xls"} else None,
                metadata=extra,
            )
        )
    if sheets:
        doc_meta["sheets"] = sheets
    return elements, doc_meta


def _check_email_encryption(data: bytes) -> None:
    from email import policy
    from email.parser import BytesParser

    try:
        message = BytesParser(policy=policy.compat32).parsebytes(data, headersonly=True)
    except Exception:  # the partitioner will report the damage
        return
    ctype = (message.get_content_type() or "").lower()
    if ctype == "multipart/encrypted" or "pkcs7-mime" in ctype:
        raise EncryptedDocument("email is encrypted (PGP or S/MIME): its body cannot be read")


def _legacy_to_text(kind: str, data: bytes) -> bytes:
    """Legacy .doc / .ppt through catdoc / catppt (Debian package catdoc, < 1 MB; no LibreOffice)."""
    tool = {"doc": "catdoc", "ppt": "catppt"}[kind]
    binary = shutil.which(tool)
    if binary is None:
        raise UnsupportedFormat(
            f"legacy .{kind} needs {tool} (Debian package catdoc): install it, or convert to .{kind}x"
        )
    with tempfile.TemporaryDirectory(prefix="ragstream-") as tmp:
        path = os.path.join(tmp, f"document.{kind}")
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            done = subprocess.run(
                [binary, "-d", "utf-8", path], capture_output=True, timeout=120, check=False
            )
        except subprocess.TimeoutExpired:
            raise CorruptDocument(f"legacy .{kind} took too long to convert") from None
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip()[:200]
        if "encrypt" in err.lower() or "password" in err.lower():
            raise EncryptedDocument(f"legacy .{kind} is password-protected")
        raise CorruptDocument(f"legacy .{kind} could not be read ({err or 'exit ' + str(done.returncode)})")
    return done.stdout


def _partition_json(data: bytes) -> list[Element]:
    """Any JSON: one element per top-level entry, its leaves as ``path: value`` lines."""
    try:
        value = json.loads(decode_text(data))
    except ValueError as exc:
        raise CorruptDocument(f"JSON is malformed ({exc})") from None
    items = (
        list(value.items())
        if isinstance(value, dict)
        else list(enumerate(value))
        if isinstance(value, list)
        else [("", value)]
    )
    elements = []
    for key, item in items:
        lines = [f"{path}: {leaf}" if path else str(leaf) for path, leaf in _leaves(item, str(key))]
        text = "\n".join(line for line in lines if line.strip())
        if text.strip():
            elements.append(Element(text=text, type="NarrativeText", metadata={"json_key": str(key)}))
    return elements


def _leaves(value: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    if value is None or value == "":
        return []
    return [(path, str(value))]


# -- deeply nested HTML ------------------------------------------------------------------------------

#: libxml2 (under unstructured's HTML partitioner) stops descending past this depth and drops the rest.
HTML_MAX_DEPTH = 255
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^>]*?(/?)>")
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]  # no end tag
)


def html_depth(text: str) -> int:
    """The deepest element nesting of an HTML text (tags counted, not parsed: an estimate from above)."""
    depth = deepest = 0
    for closing, name, self_closing in _TAG.findall(text):
        if name.lower() in _VOID or self_closing:
            continue
        if closing:
            depth = max(depth - 1, 0)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


class _TextOf(HTMLParser):
    """All the text of an HTML document, block by block, whatever its depth (scripts and styles left out)."""

    _BLOCKS = frozenset(
        [
            "p",
            "div",
            "li",
            "tr",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "br",
            "section",
            "article",
            "table",
            "ul",
            "ol",
            "pre",
            "blockquote",
        ]
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(self._skip - 1, 0)
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_text(text: str) -> str:
    """The text of an HTML document too deep for the HTML partitioner, in full."""
    parser = _TextOf()
    parser.feed(text)
    parser.close()
    return re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()
