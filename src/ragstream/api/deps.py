"""What the routes of one app share: its clients and settings, built once per process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..access import Authenticator, FeedbackSigner
    from ..config import Settings
    from ..ledger import Ledger
    from ..query import Retriever
    from .schemas import Feedback, FeedbackResult


@dataclass(frozen=True)
class Deps:
    """The process-wide half of a request's world; the per-request half (the scope) is the resolver's."""

    retriever: Retriever
    ledger: Ledger
    settings: Settings
    auth: Authenticator
    signer: FeedbackSigner
    #: Records a feedback; a :class:`~ragstream.api.feedback.FeedbackSink`.
    feedback_sink: Callable[[Feedback], FeedbackResult]
