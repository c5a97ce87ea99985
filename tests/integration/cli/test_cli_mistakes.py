"""Ordinary mistakes at the ``ragstream`` command: one line on stderr, exit status 2, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def ragstream(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("RAGSTREAM_", "OPENAI_"))}
    environ["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run(
        [sys.executable, "-m", "ragstream", *argv, "--home", str(tmp_path / "home")],
        capture_output=True, text=True, timeout=120, env={**environ, **env}, cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"RAGSTREAM_TOP_K": "abc"}, "error: RAGSTREAM_TOP_K: Input should be a valid integer"),
        ({"RAGSTREAM_INDEX": "elastic"}, "error: RAGSTREAM_INDEX: Input should be 'edge', 'qdrant'"),
        ({"RAGSTREAM_RETRIEVAL": "sparse"}, "error: RAGSTREAM_RETRIEVAL: Input should be 'hybrid'"),
        ({"RAGSTREAM_EMBEDDING_PROVIDER": "openai"}, "error: RAGSTREAM_EMBEDDING_PROVIDER=openai needs"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    tmp_path: Path, env: dict[str, str], line: str
) -> None:
    result = ragstream(tmp_path, "search", "leave", **env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(line) and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["search", "x", "--meta", "foo"], "argument --meta: 'foo' is not KEY=VALUE"),
        (["search", "x", "--top-k", "-3"], "argument --top-k: -3 is too small: give 1 or more"),
        (["search", "x", "--top-k", "0"], "argument --top-k: 0 is too small: give 1 or more"),
        (["ask", "x", "--top-k", "many"], "argument --top-k: 'many' is not a whole number"),
        (["serve", "--port", "99999"], "argument --port: 99999 is not a port number (0-65535)"),
        (["eval", "--dataset", "d", "--limit", "0"], "argument --limit: 0 is too small"),
        (["serch", "x"], "invalid choice: 'serch'"),
    ],
)
def test_a_bad_argument_is_one_line(tmp_path: Path, argv: list[str], line: str) -> None:
    result = ragstream(tmp_path, *argv)
    assert result.returncode == 2 and line in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "--help)" in result.stderr, result.stderr


def test_a_port_in_use_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = ragstream(tmp_path, "serve", "--port", str(port))
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"error: 127.0.0.1:{port} is already in use (another server runs there): "
        "pick another port with --port\n"
    )


def test_source_typo_prefix_path_and_a_closed_pipe(tmp_path: Path) -> None:
    # GIVEN a folder ingested once
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "leave.md").write_text("Employees get 25 days of paid annual leave.\n")
    assert ragstream(tmp_path, "ingest", "docs").returncode == 0
    # WHEN --source names a folder that holds nothing: it says so, exit 2
    result = ragstream(tmp_path, "search", "leave", "--source", "dosc")
    assert result.returncode == 2
    assert result.stderr == "error: nothing is ingested under --source dosc (see: ragstream documents)\n"
    # WHEN documents --prefix is a plain path, like --source: the document is listed
    result = ragstream(tmp_path, "documents", "--prefix", "docs")
    assert result.returncode == 0 and "docs/leave.md" in result.stdout and "1 documents" in result.stdout
    # WHEN the reader of stdout goes away (`| head`): exit quietly, no BrokenPipeError
    environ = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragstream", "documents", "--json", "--home", str(tmp_path / "home")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=environ,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == b""


def test_help_and_version(tmp_path: Path) -> None:
    result = ragstream(tmp_path, "--version")
    assert result.returncode == 0 and result.stdout.startswith("ragstream ")
    for command in ("ingest", "reconcile", "search", "ask", "documents", "serve", "dev", "eval"):
        text = ragstream(tmp_path, command, "--help").stdout
        assert ":func:" not in text and ":class:" not in text
        assert "exit status: 0 done, 1 the work failed, 2 a usage or configuration mistake" in text
    serve = ragstream(tmp_path, "serve", "--help").stdout
    assert "address to listen on" in serve and "port to listen on" in serve
