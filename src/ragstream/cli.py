"""The ``ragstream`` command: ingest, search, ask, documents, eval (and serve, dev, reconcile).

Names, texts and reasons that come from documents are printed through :func:`printable`, and log
lines through :class:`EscapingFormatter`: a file name with terminal escape codes is shown escaped,
never executed by the terminal. ``--json`` output is escaped by JSON itself.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import ConfigError, RagstreamError
from .printable import EscapingFormatter, printable

if TYPE_CHECKING:
    from .config import Settings
    from .ingest import Outcome

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ragstream`` console script.

    Exit status: 0 done, 1 the work itself failed, 2 a usage or configuration mistake (one line on
    stderr saying what to fix; ``-v`` adds the traceback).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, handlers=[handler])
    for noisy in ("httpx", "unstructured", "pdfminer", "qdrant_client"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    try:
        return _run(args)
    except BrokenPipeError:
        _quiet_stdout()  # `ragstream ... | head`: the reader left; nothing more to say
        return 141
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code, message = _explain(exc, args)
        if args.verbose:
            logging.getLogger("ragstream").exception("the full error")
        elif code == 1 and not isinstance(exc, RagstreamError):
            message += " (run with -v for the traceback)"
        print(f"error: {printable(message)}", file=sys.stderr)
        return code
    finally:
        from .tracing import flush_all

        flush_all()  # the traces of this run leave, each tracer within its flush bound


def _run(args: argparse.Namespace) -> int:
    from .config import get_settings
    from .homelock import hold_home, holds_embedded_index

    overrides = {"home": args.home} if args.home else {}
    settings = get_settings(**overrides)
    if getattr(args, "index", False) and holds_embedded_index(settings):
        with hold_home(settings.home, args.command):
            return int(args.run(args, settings) or 0)
    return int(args.run(args, settings) or 0)


def _explain(exc: BaseException, args: argparse.Namespace) -> tuple[int, str]:
    """The exit status and the one line for an error: 2 for the user's mistakes, 1 for the work's."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return 2, "; ".join(_setting_error(e) for e in exc.errors())
    if isinstance(exc, ConfigError):
        return 2, str(exc)
    if isinstance(exc, RagstreamError):
        return 1, str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        where = f"{getattr(args, 'host', '')}:{getattr(args, 'port', '')}"
        hint = "--port or --s3-port" if getattr(args, "command", "") == "dev" else "--port"
        return 2, f"{where} is already in use (another server runs there): pick another port with {hint}"
    if isinstance(exc, ModuleNotFoundError):
        return 2, f"{exc} (install the extra that provides it, e.g. pip install 'ragstream[local]')"
    return 1, f"unexpected {type(exc).__name__}: {exc}"


def _setting_error(error: Any) -> str:
    """``RAGSTREAM_TOP_K: Input should be a valid integer`` for one pydantic error of the settings."""
    message = str(error["msg"]).removeprefix("Value error, ")
    loc = [str(part) for part in error.get("loc", ()) if str(part)]
    if not loc:
        return message
    name = loc[0].upper()
    return f"{name if name.startswith('RAGSTREAM_') else 'RAGSTREAM_' + name}: {message}"


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush raises no second BrokenPipeError."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


# -- commands --------------------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from .ingest import Pipeline

    pipeline = Pipeline.from_settings(settings)
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    bar = _progress(args, "ingest")
    try:
        for path in args.paths:
            if not path.startswith("s3://") and not Path(path).exists():
                print(f"error: no such file or folder: {printable(path)}", file=sys.stderr)
                return 2
            outcomes += pipeline.sync(path, repair=args.repair, on_outcome=bar.update)
    finally:
        bar.close()
        pipeline.index.close()
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps([o.model_dump() for o in outcomes], indent=2, default=str))
    else:
        _print_summary(outcomes, elapsed)
    return 1 if any(o.status == "failed" and o.retryable for o in outcomes) else 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from .query import Retriever

    if _unknown_source(args, settings):
        return 2
    retriever = Retriever.from_settings(settings)
    try:
        hits = retriever.search(args.query, top_k=args.top_k, flt=_filter(args))
    finally:
        retriever.index.close()  # an embedded store saves and releases its folder now, not at exit
    if args.json:
        print(json.dumps([h.model_dump() for h in hits], indent=2, default=str))
        return 0
    if not hits:
        print(_no_results(args))
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank:>2}. {hit.score:.3f}  {_where(hit.source, hit.page)}")
        print(f"    {_shorten(hit.text, 240)}")
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from .query import Retriever

    if _unknown_source(args, settings):
        return 2
    retriever = Retriever.from_settings(settings)
    try:
        answer = retriever.ask(args.question, top_k=args.top_k, flt=_filter(args))
    finally:
        retriever.index.close()  # an embedded store saves and releases its folder now, not at exit
    if args.json:
        print(answer.model_dump_json(indent=2))
        return 0
    print(printable(answer.answer, keep_newlines=True))
    if answer.citations:
        print("\nSources:")
        for c in answer.citations:
            print(f"  [{c.n}] {_where(c.source, c.page)}  (score {c.score:.2f})")
    return 0


def cmd_documents(args: argparse.Namespace, settings: Settings) -> int:
    from .ledger import open_ledger
    from .model import Status

    ledger = open_ledger(settings)
    status = Status(args.status) if args.status else None
    records, cursor = [], None
    while True:
        page, cursor = ledger.list(status=status, prefix=_as_prefix(args.prefix), limit=500, cursor=cursor)
        records += page
        if cursor is None:
            break
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return 0
    for r in records:
        detail = f"{r.chunks} chunks" if r.status == "indexed" else printable(r.error or "")
        print(f"{r.status.value:<8} {_where(r.source, None):<60} {detail}")
    print(
        f"\n{len(records)} documents: "
        + ", ".join(f"{n} {s}" for s, n in Counter(r.status.value for r in records).items())
    )
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from .evaluation import run_beir

    report = run_beir(
        Path(args.dataset),
        settings,
        split=args.split,
        limit=args.limit,
        on_progress=_progress(args, "eval").update,
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            if key == "modes":
                for mode, figures in value.items():
                    shown = "  ".join(f"{metric} {figure:.4f}" for metric, figure in figures.items())
                    print(f"{mode:<18} {shown}")
            else:
                print(f"{key:<18} {value}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from .server import serve

    serve(settings, host=args.host, port=args.port)
    return 0


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from .dev import run_dev

    run_dev(settings, host=args.host, s3_port=args.s3_port, api_port=args.port, bucket=args.bucket)
    return 0


# -- output helpers -----------------------------------------------------------------------------------------


class _Bar:
    """A tqdm bar on a terminal; silent otherwise."""

    def __init__(self, enabled: bool, desc: str):
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(desc=desc, unit="doc", file=sys.stderr, leave=False)

    def update(self, item: object = None) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress(args: argparse.Namespace, desc: str) -> _Bar:
    return _Bar(sys.stderr.isatty() and not args.json, desc)


def _print_summary(outcomes: list[Outcome], elapsed: float) -> None:
    counts: Counter[str] = Counter(o.status for o in outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        kind = "retry later" if o.retryable else o.error_kind
        print(f"failed   {_where(o.source, None)}: {printable(o.reason or '')} ({kind})")
    for o in outcomes:
        if o.status in ("repaired", "deleted", "rejected"):
            reason = f": {printable(o.reason)}" if o.reason else ""
            print(f"{o.status:<8} {_where(o.source, None)}{reason}")
    chunks = sum(o.chunks for o in outcomes if o.status == "indexed")
    embedded = sum(o.embedded for o in outcomes)
    main_kinds = ("indexed", "skipped", "deleted", "failed")
    parts = [f"{counts[s]} {s}" for s in main_kinds if counts.get(s)]
    others = [f"{n} {s}" for s, n in counts.items() if s not in main_kinds]
    print(
        f"{len(outcomes)} documents in {elapsed:.1f}s: {', '.join(parts + others) or 'nothing to do'}; "
        f"{chunks} chunks indexed, {embedded} embedded ({sum(o.tokens for o in outcomes):,} tokens)"
    )


def _where(source: str, page: int | None) -> str:
    if source.startswith("file://"):
        from .sources import path_of

        path = path_of(source)
        try:
            source = str(path.relative_to(Path.cwd()))
        except ValueError:
            source = str(path)
    return printable(source) + (f", page {page}" if page else "")


def _shorten(text: str, n: int) -> str:
    text = " ".join(text.split())
    return printable(text if len(text) <= n else text[: n - 1] + "…")


def _filter(args: argparse.Namespace) -> Any:
    from .index import SearchFilter

    if not (args.source or args.content_type or args.meta):
        return None
    meta = dict(args.meta or [])
    return SearchFilter(source_prefix=_as_prefix(args.source), content_type=args.content_type, metadata=meta)


def _as_prefix(source: str | None) -> str | None:
    """A plain path as the ``file://`` prefix the ledger and index hold; a URI as given."""
    from .sources import prefix_of

    return prefix_of(source) if source else None


def _nothing_under(settings: Settings, source: str) -> bool:
    """True when the ledger holds no document under ``source`` (a typo in ``--source``)."""
    from .ledger import open_ledger

    page, _ = open_ledger(settings).list(prefix=_as_prefix(source), limit=1)
    return not page


def _unknown_source(args: argparse.Namespace, settings: Settings) -> bool:
    """Say so (and return True) when ``--source`` names nothing ingested: a typo, not an empty answer."""
    if not args.source or not _nothing_under(settings, args.source):
        return False
    print(
        f"error: nothing is ingested under --source {printable(args.source)} (see: ragstream documents)",
        file=sys.stderr,
    )
    return True


def _no_results(args: argparse.Namespace) -> str:
    if args.source or args.content_type or args.meta:
        return "no results match the filters (--source, --content-type, --meta)"
    return "no results (is anything ingested? try: ragstream ingest PATH)"


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


# -- parser --------------------------------------------------------------------------------------------------


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


def _parser() -> argparse.ArgumentParser:
    common, retrieval, server = _parents()
    parser = _Parser(
        prog="ragstream", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND", title="commands")

    p = _sub(sub, "ingest", "index files or folders (s3:// too) and drop what was deleted", [common])
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or s3://bucket/prefix")
    p.set_defaults(run=cmd_ingest, repair=False, index=True, command="ingest")

    p = _sub(
        sub, "reconcile",
        "like ingest, and also repair the index: stray versions, missing points, lost events", [common],
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders or s3://bucket/prefix")
    p.set_defaults(run=cmd_ingest, repair=True, index=True, command="reconcile")

    p = _sub(sub, "search", "print the chunks nearest to a query, with their sources", [common, retrieval])
    p.add_argument("query", help="what to look for, in your own words")
    p.set_defaults(run=cmd_search, index=True, command="search")

    p = _sub(sub, "ask", "answer a question from the documents, with citations", [common, retrieval])
    p.add_argument("question", help="the question, quoted")
    p.set_defaults(run=cmd_ask, index=True, command="ask")

    p = _sub(sub, "documents", "list the ingested documents: what is indexed, what failed and why", [common])
    p.add_argument(
        "--status", choices=["indexed", "failed", "deleted", "pending"], help="only documents in this state"
    )
    p.add_argument(
        "--prefix", metavar="PATH_OR_URI", help="only documents under this folder, file or URI prefix"
    )
    p.set_defaults(run=cmd_documents)

    p = _sub(sub, "serve", "serve the HTTP API and web page on this machine", [common, server])
    p.add_argument("--port", type=_port, default=8080, help="port to listen on (default: 8080)")
    p.set_defaults(run=cmd_serve, index=True, command="serve")

    p = _sub(
        sub, "dev", "run the AWS flow on this machine: S3 + SQS (moto), both Lambdas", [common, server]
    )
    p.add_argument("--s3-port", type=_port, default=4566, help="S3 and SQS endpoint port (default: 4566)")
    p.add_argument("--port", type=_port, default=8080, help="query API port (default: 8080)")
    p.add_argument(
        "--bucket", default="ragstream-docs", help="bucket to create and watch (default: ragstream-docs)"
    )
    p.set_defaults(run=cmd_dev, index=True, command="dev")

    p = _sub(sub, "eval", "measure retrieval quality on a BEIR-layout dataset", [common])
    p.add_argument(
        "--dataset", required=True, metavar="DIR", help="folder with corpus.jsonl, queries.jsonl, qrels/"
    )
    p.add_argument("--split", default="test", help="qrels/SPLIT.tsv (default: test)")
    p.add_argument(
        "--limit", type=_positive_int, default=None, metavar="N", help="evaluate only the first N queries"
    )
    p.set_defaults(run=cmd_eval)  # its own folder: home/eval/NAME
    return parser


if __name__ == "__main__":
    sys.exit(main())
