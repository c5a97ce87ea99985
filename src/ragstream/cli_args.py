"""The ``ragstream`` command line: its commands, options and help, and the argparse types that turn
a mistake into one line and exit status 2 (see :mod:`ragstream.cli` for what each command does)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["EPILOG", "build_parser"]


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is too small: give 1 or more")
    return value


def _port(text: str) -> int:
    """An argparse type: a TCP port, 0-65535 (0: any free port, printed when serving)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"{text} is not a port number (0-65535)")
    return value


def _key_value(text: str) -> tuple[str, str]:
    """An argparse type: ``KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE, e.g. --meta team=hr")
    return key, value


DESCRIPTION = """\
Index documents and ask questions about them, with answers cited to their sources.

Start with: ragstream ingest examples/  then: ragstream ask "How many days of leave do I get?"
Settings come from RAGSTREAM_* environment variables (e.g. RAGSTREAM_TOP_K, RAGSTREAM_INDEX).
"""

EPILOG = "exit status: 0 done, 1 the work failed, 2 a usage or configuration mistake"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragstream")
    except PackageNotFoundError:
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake told in one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def _sub(sub: Any, name: str, summary: str, parents: list[argparse.ArgumentParser]) -> Any:
    """A subcommand whose ``--help`` opens with the same sentence the command list shows."""
    return sub.add_parser(
        name, parents=parents, help=summary, description=summary[0].upper() + summary[1:] + ".", epilog=EPILOG
    )


def _parents() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, argparse.ArgumentParser]:
    """The options several commands share: every command's, retrieval's, a server's."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", type=Path, metavar="DIR", help="state folder (default: $RAGSTREAM_HOME or ./.ragstream)"
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, and tracebacks on errors"
    )
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")

    retrieval = argparse.ArgumentParser(add_help=False)
    retrieval.add_argument(
        "--top-k", type=_positive_int, default=None, metavar="N", help="chunks to retrieve (default 5)"
    )
    retrieval.add_argument(
        "--source", metavar="PATH_OR_URI", help="only sources under this folder, file or URI prefix"
    )
    retrieval.add_argument(
        "--content-type", metavar="MIME", help="only this MIME type, e.g. application/pdf"
    )
    retrieval.add_argument(
        "--meta", action="append", type=_key_value, metavar="KEY=VALUE",
        help="only documents whose metadata KEY equals VALUE (repeatable)",
    )
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    return common, retrieval, server


def build_parser() -> argparse.ArgumentParser:
    """The ``ragstream`` command line; each command's ``run`` names its function in ``cli.COMMANDS``."""
    common, retrieval, server = _parents()
    parser = _Parser(
        prog="ragstream", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND", title="commands")

    p = _sub(sub, "ingest", "index files or folders (s3:// too) and drop what was deleted", [common])
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or s3://bucket/prefix")
    p.set_defaults(run="ingest", repair=False, index=True, command="ingest")

    p = _sub(
        sub, "reconcile",
        "like ingest, and also repair the index: stray versions, missing points, lost events", [common],
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders or s3://bucket/prefix")
    p.set_defaults(run="ingest", repair=True, index=True, command="reconcile")

    p = _sub(sub, "search", "print the chunks nearest to a query, with their sources", [common, retrieval])
    p.add_argument("query", help="what to look for, in your own words")
    p.set_defaults(run="search", index=True, command="search")

    p = _sub(sub, "ask", "answer a question from the documents, with citations", [common, retrieval])
    p.add_argument("question", help="the question, quoted")
    p.set_defaults(run="ask", index=True, command="ask")

    p = _sub(sub, "documents", "list the ingested documents: what is indexed, what failed and why", [common])
    p.add_argument(
        "--status", choices=["indexed", "failed", "deleted", "pending"], help="only documents in this state"
    )
    p.add_argument(
        "--prefix", metavar="PATH_OR_URI", help="only documents under this folder, file or URI prefix"
    )
    p.set_defaults(run="documents")

    p = _sub(sub, "serve", "serve the HTTP API and web page on this machine", [common, server])
    p.add_argument("--port", type=_port, default=8080, help="port to listen on (default: 8080)")
    p.set_defaults(run="serve", index=True, command="serve")

    p = _sub(
        sub, "dev", "run the AWS flow on this machine: S3 + SQS (moto), both Lambdas", [common, server]
    )
    p.add_argument("--s3-port", type=_port, default=4566, help="S3 and SQS endpoint port (default: 4566)")
    p.add_argument("--port", type=_port, default=8080, help="query API port (default: 8080)")
    p.add_argument(
        "--bucket", default="ragstream-docs", help="bucket to create and watch (default: ragstream-docs)"
    )
    p.set_defaults(run="dev", index=True, command="dev")

    p = _sub(sub, "eval", "measure retrieval quality on a BEIR-layout dataset", [common])
    p.add_argument(
        "--dataset", required=True, metavar="DIR", help="folder with corpus.jsonl, queries.jsonl, qrels/"
    )
    p.add_argument("--split", default="test", help="qrels/SPLIT.tsv (default: test)")
    p.add_argument(
        "--limit", type=_positive_int, default=None, metavar="N", help="evaluate only the first N queries"
    )
    p.set_defaults(run="eval")  # its own folder: home/eval/NAME
    return parser
