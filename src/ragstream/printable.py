"""Names from documents (file names, S3 keys, titles) made safe to print on a terminal or in a log.

A file name or an S3 key may hold any character, terminal escape sequences included (``ESC [ 2 J``
clears the screen, ``ESC ] 8`` writes links, ``ESC ] 52`` can set the clipboard), and bidirectional
overrides that make ``exe.pdf`` read as ``fdp.exe``. :func:`printable` escapes every control and
format character as ``\\xNN`` / ``\\uNNNN`` and keeps everything else, so names in other scripts stay
readable. :class:`EscapingFormatter` does the same for whole log lines of the plain-text console
logs; the Lambda's JSON logs are escaped by JSON itself.
"""

from __future__ import annotations

import logging
import unicodedata

__all__ = ["EscapingFormatter", "printable"]

#: Unicode categories escaped: controls (C0, C1, DEL), format characters (bidi overrides, zero-width
#: joiners), line and paragraph separators, unassigned and private-use code points, lone surrogates.
_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cn", "Co", "Cs"})


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control or format character escaped (``\\x1b``, ``\\u202e``...).

    A backslash is kept as it is: the output is for reading, not for parsing back.
    ``keep_newlines`` keeps ``\\n`` (for multi-line text such as an answer), never ``\\r``.
    """
    if text.isascii() and text.isprintable():
        return text
    out = []
    for char in text:
        if keep_newlines and char == "\n":
            out.append(char)
        elif unicodedata.category(char) in _UNSAFE:
            out.append(_escape(char))
        else:
            out.append(char)
    return "".join(out)


class EscapingFormatter(logging.Formatter):
    """A formatter whose lines cannot carry terminal escapes: the message and traceback are escaped.

    Newlines of a traceback are kept; any other control character (of a file name in the message,
    say) is written as ``\\xNN``.
    """

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record), keep_newlines=True)
