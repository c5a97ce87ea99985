"""The ``ragstream`` command: ingest, search, ask, documents, eval (and serve, dev, reconcile).

Names, texts and reasons that come from documents are printed through :func:`printable`, and log
lines through :class:`EscapingFormatter`: a file name with terminal escape codes is shown escaped,
never executed by the terminal. ``--json`` output is escaped by JSON itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import RagstreamError
from .printable import EscapingFormatter, printable

if TYPE_CHECKING:
    from .config import Settings
    from .ingest import Outcome

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ragstream`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, handlers=[handler])
    for noisy in ("httpx", "unstructured", "pdfminer", "qdrant_client"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    try:
        from .config import get_settings
        from .homelock import hold_home, holds_embedded_index

        overrides = {"home": args.home} if args.home else {}
        settings = get_settings(**overrides)
        if getattr(args, "index", False) and holds_embedded_index(settings):
            with hold_home(settings.home, args.command):
                return int(args.run(args, settings) or 0)
        return int(args.run(args, settings) or 0)
    except RagstreamError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        from .tracing import flush_all

        flush_all()  # the traces of this run leave, each tracer within its flush bound


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

    retriever = Retriever.from_settings(settings)
    try:
        hits = retriever.search(args.query, top_k=args.top_k, flt=_filter(args))
    finally:
        retriever.index.close()  # an embedded store saves and releases its folder now, not at exit
    if args.json:
        print(json.dumps([h.model_dump() for h in hits], indent=2, default=str))
        return 0
    if not hits:
        print("no results (is anything ingested? try: ragstream ingest PATH)")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank:>2}. {hit.score:.3f}  {_where(hit.source, hit.page)}")
        print(f"    {_shorten(hit.text, 240)}")
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from .query import Retriever

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
        page, cursor = ledger.list(status=status, prefix=args.prefix, limit=500, cursor=cursor)
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
        from .blobs import path_of

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
    source = args.source
    if source and "://" not in source:
        path = Path(source).resolve()
        source = path.as_uri() + ("/" if path.is_dir() else "")
    meta = dict(item.split("=", 1) for item in args.meta or [])
    return SearchFilter(source_prefix=source, content_type=args.content_type, metadata=meta)


# -- parser --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", type=Path, help="state folder (default: $RAGSTREAM_HOME or ./.ragstream)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("--json", action="store_true", help="machine-readable output")

    retrieval = argparse.ArgumentParser(add_help=False)
    retrieval.add_argument("--top-k", type=int, default=None, help="chunks to retrieve (default 5)")
    retrieval.add_argument("--source", help="only sources under this folder / prefix (path or URI)")
    retrieval.add_argument("--content-type", help="only this MIME type, e.g. application/pdf")
    retrieval.add_argument("--meta", action="append", metavar="KEY=VALUE", help="user metadata equality")

    parser = argparse.ArgumentParser(prog="ragstream", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[common], help="index files or folders (s3:// too); sync deletions")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.set_defaults(run=cmd_ingest, repair=False, index=True, command="ingest")

    p = sub.add_parser(
        "reconcile",
        parents=[common],
        help="like ingest, and also repair the index: stray versions, missing points, lost events",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="folders or s3://bucket/prefix")
    p.set_defaults(run=cmd_ingest, repair=True, index=True, command="reconcile")

    p = sub.add_parser("search", parents=[common, retrieval], help="the chunks nearest to a query")
    p.add_argument("query")
    p.set_defaults(run=cmd_search, index=True, command="search")

    p = sub.add_parser("ask", parents=[common, retrieval], help="an answer with citations")
    p.add_argument("question")
    p.set_defaults(run=cmd_ask, index=True, command="ask")

    p = sub.add_parser("documents", parents=[common], help="the ledger: what is indexed, what failed")
    p.add_argument("--status", choices=["indexed", "failed", "deleted", "skipped"])
    p.add_argument("--prefix", help="only sources starting with this URI prefix")
    p.set_defaults(run=cmd_documents)

    p = sub.add_parser("serve", parents=[common], help="the HTTP API of the query Lambda, on this machine")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(run=cmd_serve, index=True, command="serve")

    p = sub.add_parser(
        "dev", parents=[common], help="the AWS flow on this machine: S3 + SQS (moto), both Lambdas"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--s3-port", type=int, default=4566, help="S3 and SQS endpoint port")
    p.add_argument("--port", type=int, default=8080, help="query API port")
    p.add_argument("--bucket", default="ragstream-docs")
    p.set_defaults(run=cmd_dev, index=True, command="dev")

    p = sub.add_parser("eval", parents=[common], help="retrieval quality on a BEIR-layout dataset")
    p.add_argument("--dataset", required=True, help="folder with corpus.jsonl, queries.jsonl, qrels/")
    p.add_argument("--split", default="test", help="qrels/SPLIT.tsv (default: test)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N queries")
    p.set_defaults(run=cmd_eval)  # its own folder: home/eval/NAME
    return parser


if __name__ == "__main__":
    sys.exit(main())
