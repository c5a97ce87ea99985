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
from typing import TYPE_CHECKING, Any

from .cli_args import build_parser
from .errors import ConfigError, RagstreamError
from .printable import EscapingFormatter, printable

if TYPE_CHECKING:
    from .config import Settings
    from .ingest import Outcome
    from .progress import Progress

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ragstream`` console script.

    Exit status: 0 done, 1 the work itself failed, 2 a usage or configuration mistake (one line on
    stderr saying what to fix; ``-v`` adds the traceback).
    """
    parser = build_parser()
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
            return int(COMMANDS[args.run](args, settings) or 0)
    return int(COMMANDS[args.run](args, settings) or 0)


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
    bar = _progress(args, settings, args.command)
    try:
        for path in args.paths:
            if not path.startswith("s3://") and not Path(path).exists():
                print(f"error: no such file or folder: {printable(path)}", file=sys.stderr)
                return 2
            outcomes += pipeline.sync(path, repair=args.repair, on_outcome=bar.update, on_total=bar.set_total)
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
    if not records:
        print("no documents" + (f" {args.status}" if args.status else "") + " (try: ragstream ingest PATH)")
        return 0
    counts = ", ".join(f"{n} {s}" for s, n in Counter(r.status.value for r in records).items())
    print(f"\n{len(records)} documents: {counts}")
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from .evaluation import run_beir

    bar = _progress(args, settings, "eval")
    try:
        report = run_beir(
            Path(args.dataset),
            settings,
            split=args.split,
            limit=args.limit,
            on_progress=bar.update,
            on_total=bar.set_total,
        )
    finally:
        bar.close()
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


def _progress(args: argparse.Namespace, settings: Settings, desc: str) -> Progress:
    """A bar on a terminal (not with --json); off one, a line every ``progress_seconds`` on stderr."""
    from .progress import Progress

    return Progress(desc, tty=sys.stderr.isatty() and not args.json, every=settings.progress_seconds)


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


COMMANDS = {
    "ask": cmd_ask,
    "dev": cmd_dev,
    "documents": cmd_documents,
    "eval": cmd_eval,
    "ingest": cmd_ingest,
    "search": cmd_search,
    "serve": cmd_serve,
}


if __name__ == "__main__":
    sys.exit(main())
