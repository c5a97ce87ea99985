"""ragstream: keep a vector index in sync with the files of an S3 bucket or a folder, and answer
questions over them with citations.

The pieces: ``ragstream.config.Settings`` (configuration), ``ragstream.ingest.Pipeline`` (ingest,
delete, sync, reconcile), ``ragstream.query.Retriever`` (search and cited answers),
``ragstream.api.build_app`` (the HTTP API of the query Lambda and ``ragstream serve``).
"""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__``, looked up on first use: importlib.metadata scans every installed package,
    a cost each CLI command and cold start would pay for nothing."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragstream")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0"
