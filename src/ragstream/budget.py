"""The time an invocation has left: one small object the core consults before every long step.

The Lambda adapter builds it from the context's ``get_remaining_time_in_millis``; the CLI passes
none (unbounded: every step just waits). The core never sees the Lambda context itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["UNBOUNDED", "Deadline"]


@dataclass(frozen=True)
class Deadline:
    """Seconds left before the caller is cut off, minus a reserve kept to record outcomes.

    ``remaining`` returns the seconds left (None: no limit). ``reserve`` is what the end of the
    invocation needs: writing the ledger, re-enqueueing parked documents, flushing traces.
    """

    remaining: Callable[[], float] | None = None
    reserve: float = 15.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    @classmethod
    def from_millis(cls, remaining_ms: Callable[[], int], *, reserve: float = 15.0) -> Deadline:
        """A deadline from a ``get_remaining_time_in_millis``-style callable."""
        return cls(remaining=lambda: remaining_ms() / 1000.0, reserve=reserve)

    @property
    def bounded(self) -> bool:
        """Whether there is a limit at all."""
        return self.remaining is not None

    def left(self) -> float:
        """Seconds usable for work from now on (infinite when unbounded, never below zero)."""
        if self.remaining is None:
            return math.inf
        return max(0.0, self.remaining() - self.reserve)

    def allows(self, seconds: float) -> bool:
        """Whether a step expected to take ``seconds`` can still finish in time."""
        return self.left() >= seconds

    def within(self, seconds: float) -> Deadline:
        """A deadline for one step that may use at most ``seconds`` of this one's time (or what is
        left, if less), so that the steps after it keep theirs. Unbounded stays unbounded."""
        if self.remaining is None:
            return self
        parent = self
        keep = max(0.0, self.left() - seconds)  # what the parent must still have when the step ends
        return Deadline(remaining=lambda: parent.left() - keep, reserve=0.0, clock=self.clock)


#: No limit: the local CLI and tests that do not simulate a Lambda.
UNBOUNDED = Deadline()
