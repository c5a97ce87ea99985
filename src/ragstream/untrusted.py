"""Document text is untrusted: what the answerer does before showing it to a model or quoting it.

Anyone who can put a file in the bucket can put text in front of the chat model. Two defences:

- :func:`neutralise` rewrites what in a chunk (or its title or name) could pass for the prompt's own
  structure: the ``<source>`` / ``<sources>`` delimiters, a forged citation number ``[k]``, chat
  template and role markers (``<|im_start|>``, ``[INST]``, ``<<SYS>>``...) and the service's
  no-answer sentence. What remains is only data between delimiters the document cannot close.
- :func:`is_instruction` recognises a sentence written to an assistant rather than to a reader, so
  the extractive answerer never quotes one. It is a heuristic with three families of signals:

  1. *markup*: role or template markers (``<|im_start|>``, ``<|system|>``, ``[INST]``,
     ``<<SYS>>``, ``### Instruction:``), a role label opening the sentence (``system:``,
     ``assistant:``), or the prompt's own structure (a ``<source>`` tag, a ``[k] (source)`` header);
  2. *addressing the model*: "you are ChatGPT / an AI / a language model / the assistant",
     "as an AI language model", "AI assistants must ...", "your (system) prompt / instructions";
  3. *overriding the task*: an override verb on instructions ("ignore / disregard / forget / override
     (all) previous instructions"), new instructions ("new instructions:", "from now on, answer"),
     dictated answers ("the correct answer is", "answer / respond / reply (only) with", "when asked
     about ..., say", "tell the user").

  A policy sentence ("Employees must submit receipts") matches none of them. A document *about*
  prompt injection will have such sentences left out of extractive answers; it stays searchable.

Neither is a guarantee: a model may still follow text that reads like an ordinary fact. What the
service checks afterwards is that every citation maps to a retrieved source (see ``query.py``).
"""

from __future__ import annotations

import re

__all__ = ["is_instruction", "neutralise"]

# -- neutralising --------------------------------------------------------------------------------------------

#: Our delimiters, and any tag that could pass for one: <source ...>, </source>, <sources>, </sources>.
_DELIMITER = re.compile(r"<(/?)\s*(sources?)\b", re.IGNORECASE)
#: A citation number: the prompt's sources are numbered by the service alone.
_CITATION = re.compile(r"\[(\s*\d{1,4}(?:\s*[,;-]\s*\d{1,4})*\s*)\]")
#: Chat template and role markers of common model families.
_MARKUP = re.compile(
    r"<\|[^|>\n]{0,40}\|>"  # <|im_start|>, <|system|>, <|eot_id|>, <|start_header_id|>
    r"|\[/?INST\]|<</?SYS>>|</?s>"  # Llama 2, Mistral
    r"|<\s*/?\s*(?:system|assistant|user|developer|instructions?)\s*>",  # XML-ish role tags
    re.IGNORECASE,
)


def neutralise(text: str, *, sentences: tuple[str, ...] = ()) -> str:
    """``text`` with the prompt's structure defused: delimiters, ``[k]``, chat markup, and each of
    ``sentences`` (e.g. the no-answer sentence) rewritten so that they no longer read as such."""
    text = _DELIMITER.sub(lambda m: f"‹{m.group(1)}{m.group(2)}", text)
    text = _CITATION.sub(lambda m: f"({m.group(1).strip()})", text)
    text = _MARKUP.sub(lambda m: "‹" + m.group(0).strip("<>[]") + "›", text)
    for sentence in sentences:
        core = re.escape(sentence.rstrip(".")).replace(r"\ ", r"\s+")
        text = re.sub(core, "(a no-answer sentence quoted by the document)", text, flags=re.IGNORECASE)
    return text


# -- recognising instructions ----------------------------------------------------------------------------

_ROLE_LABEL = re.compile(r"^\W{0,4}(system|assistant|developer|ai|bot|chatgpt|gpt|claude|llm)\s*:", re.I)
_MARKUP_HEADINGS = re.compile(r"#{2,}\s*(instruction|system|response|assistant)\b", re.I)
_MODEL = (
    r"(?:chat\s?gpt|gpt(?:-\d\S*)?|claude|gemini|llama|copilot|bard|an?\s+(?:ai|artificial intelligence)"
    r"(?:\s+(?:language\s+model|assistant|model|system|chatbot))?|an?\s+(?:large\s+)?language\s+model"
    r"|an?\s+(?:helpful\s+|honest\s+)*(?:ai\s+)?(?:assistant|chatbot)|the\s+(?:ai|assistant|model|chatbot|llm)"
    r"|dan|in\s+developer\s+mode)"
)
_ADDRESS = [
    re.compile(rf"\byou\s+are\s+(?:now\s+|no\s+longer\s+)?{_MODEL}\b", re.I),
    re.compile(r"\bas\s+an?\s+(?:ai|artificial intelligence|large language model|language model)\b", re.I),
    re.compile(
        r"\b(?:the\s+)?(?:ai\s+)?(?:assistants?|chatbots?|llms?)\s+"
        r"(?:must|should|shall|needs?\s+to|(?:is|are)\s+(?:required|instructed)\s+to)\b",
        re.I,
    ),
    re.compile(r"\byour\s+(?:system\s+prompt|instructions|prompt|guidelines|rules|training)\b", re.I),
    re.compile(r"\b(?:system\s+prompt|prompt\s+injection|jailbreak|developer\s+mode)\b", re.I),
]
_OVERRIDE = [
    re.compile(
        r"\b(?:ignore|disregard|forget|do\s+not\s+follow|don'?t\s+follow)\s+(?:all\s+|any\s+|the\s+|your\s+|of\s+)*"
        r"(?:previous|prior|above|earlier|preceding|original|system|existing|given|other)\s+(?:instructions?|"
        r"prompts?|messages?|rules|directions|guidelines|context|sources)\b",
        re.I,
    ),
    re.compile(
        r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+|the\s+|your\s+|these\s+)*(?:instructions?|prompts?)\b",
        re.I,
    ),
    re.compile(r"\bnew\s+(?:instructions?|task|rules)\s*[:\-]", re.I),
    re.compile(r"\bfrom\s+now\s+on,?\s+(?:you|answer|respond|reply|say|always|never)\b", re.I),
    re.compile(
        r"\bthe\s+(?:correct|right|real|true|only|official|actual)\s+answer\s+(?:is|will\s+be|=)", re.I
    ),
    re.compile(
        r"\b(?:answer|respond|reply)\s+(?:only|exactly|always)\b|\balways\s+(?:answer|respond|reply)\b"
        r"|\b(?:say|output|print)\s+(?:only|exactly)\b",
        re.I,
    ),
    re.compile(r"\b(?:when|if)\s+(?:you\s+are|you're)\s+asked\b|\bif\s+(?:the\s+)?user\s+asks\b", re.I),
    re.compile(r"\btell\s+the\s+(?:user|human)s?\b", re.I),
    re.compile(
        r"\b(?:do\s+not|don'?t|never)\s+(?:mention|reveal|cite|disclose)\s+(?:this|these|the\s+sources?)\b",
        re.I,
    ),
]


#: A source header as older prompts wrote them: "[3] (s3://bucket/key, page 2)".
_HEADER = re.compile(r"^\W{0,4}\[\s*\d{1,4}\s*\]\s*\(")


_ANY_SIGNAL = re.compile(
    "|".join(
        f"(?:{p.pattern})"
        for p in (_MARKUP, _ROLE_LABEL, _MARKUP_HEADINGS, _DELIMITER, _HEADER, *_ADDRESS, *_OVERRIDE)
    ),
    re.IGNORECASE,
)


def is_instruction(sentence: str) -> bool:
    """Whether ``sentence`` is written to an AI assistant (markup, addressing it, or overriding its task)."""
    return _ANY_SIGNAL.search(sentence) is not None
