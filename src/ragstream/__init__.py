"""ragstream: keep a vector index in sync with the files of an S3 bucket or a folder, and answer
questions over them with citations.

The pieces: ``ragstream.config.Settings`` (configuration), ``ragstream.ingest.Pipeline`` (ingest,
delete, sync, reconcile), ``ragstream.query.Retriever`` (search and cited answers),
``ragstream.api.build_app`` (the HTTP API of the query Lambda and ``ragstream serve``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ragstream")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
