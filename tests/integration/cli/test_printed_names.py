"""Printed names are safe: file names with terminal escape codes are shown escaped by every command.

A real folder is ingested with ``ragstream`` (in process, the embedded default); the names carry an
ESC sequence that would clear the screen, a BEL, and a right-to-left override.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ragstream.cli import main
from ragstream.printable import EscapingFormatter, printable

EVIL = "\x1b[2J\x1b]0;pwned\x07report\u202etxt.md"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_safe(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text


def test_every_command_prints_names_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a folder with a document and an empty file, both named with escape codes
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / EVIL).write_text("# Leave\n\nEmployees receive 25 days of paid annual leave per calendar year.\n")
    (docs / f"empty{EVIL}").write_text("")
    home = str(tmp_path / "home")
    # WHEN every command that prints names runs
    outputs = [
        run(capsys, "ingest", str(docs), "--home", home),
        run(capsys, "documents", "--home", home),
        run(capsys, "search", "annual leave", "--home", home),
        run(capsys, "ask", "How many days of paid annual leave do employees get?", "--home", home),
    ]
    # THEN no output holds a raw control or format character, and the names are there, escaped
    for _, out, err in outputs:
        assert_safe(out)
        assert_safe(err)
    ingest, documents, search, ask = (out for _, out, _ in outputs)
    escaped = r"\x1b[2J\x1b]0;pwned\x07report\u202etxt.md"
    assert escaped in ingest  # the failed empty file, by name
    assert escaped in documents and escaped in search and escaped in ask


def test_log_lines_are_escaped() -> None:
    record = logging.LogRecord("ragstream", logging.WARNING, __file__, 1, "skipped %s", (EVIL,), None)
    line = EscapingFormatter("%(levelname)s %(message)s").format(record)
    assert_safe(line)
    assert line == "WARNING skipped " + printable(EVIL)


def test_printable_keeps_other_scripts() -> None:
    assert printable("Überweisung 年報 отчёт.pdf") == "Überweisung 年報 отчёт.pdf"
    assert printable("a\tb\nc\r") == r"a\x09b\x0ac\x0d"
    assert printable("a\nb", keep_newlines=True) == "a\nb"
