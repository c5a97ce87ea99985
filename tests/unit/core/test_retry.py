"""The retry policy on a fake clock: what is retried, how often, how long it waits, when it stops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from ragstream.budget import Deadline
from ragstream.errors import ConfigError, IndexUnavailable, ServiceUnavailable, Throttled
from ragstream.retry import Backoff, retry_after, retrying


@dataclass
class FakeClock:
    """Time that passes only when the code under test sleeps."""

    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def deadline(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now on this clock, without a reserve."""
        return Deadline(remaining=lambda: seconds - self.now, reserve=0.0, clock=lambda: self.now)


def failing(*errors: BaseException, result: Any = "ok") -> tuple[Callable[[], Any], list[int]]:
    """A call raising ``errors`` one per try, then returning ``result``; and the list of its tries."""
    tries: list[int] = []

    def call() -> Any:
        tries.append(len(tries) + 1)
        if len(tries) <= len(errors):
            raise errors[len(tries) - 1]
        return result

    return call, tries


def test_transient_errors_are_retried_until_the_call_succeeds() -> None:
    clock = FakeClock()
    call, tries = failing(Throttled("429"), ServiceUnavailable("503"), IndexUnavailable("down"))
    assert retrying(call, attempts=5, sleep=clock.sleep, wait_hint=None) == "ok"
    assert tries == [1, 2, 3, 4] and len(clock.slept) == 3


def test_permanent_errors_are_not_retried() -> None:
    clock = FakeClock()
    call, tries = failing(ConfigError("bad key"))
    with pytest.raises(ConfigError, match="bad key"):
        retrying(call, attempts=5, sleep=clock.sleep)
    assert tries == [1] and clock.slept == []


def test_what_the_caller_names_is_retried_and_nothing_else() -> None:
    clock = FakeClock()
    call, tries = failing(ConnectionError("reset"), TimeoutError("slow"))
    assert retrying(call, attempts=3, retry_on=(ConnectionError, TimeoutError), sleep=clock.sleep) == "ok"
    assert tries == [1, 2, 3]
    # a predicate works too; and a ragstream transient error is not retried when not named
    call, tries = failing(Throttled("429"))
    with pytest.raises(Throttled):
        retrying(call, attempts=3, retry_on=lambda exc: isinstance(exc, ConnectionError), sleep=clock.sleep)
    assert tries == [1]


def test_it_gives_up_after_n_tries_with_the_last_error() -> None:
    clock = FakeClock()
    call, tries = failing(*(Throttled(f"try {n}") for n in range(1, 10)))
    with pytest.raises(Throttled, match="try 4"):
        retrying(call, attempts=4, sleep=clock.sleep)
    assert tries == [1, 2, 3, 4] and len(clock.slept) == 3  # no pause after the last try


def test_the_backoff_is_exponential_with_jitter_and_capped() -> None:
    clock = FakeClock()
    call, _ = failing(*(ServiceUnavailable("503") for _ in range(6)))
    retrying(call, attempts=7, backoff=Backoff(base=1.0, cap=8.0), wait_hint=None, sleep=clock.sleep)
    for n, pause in enumerate(clock.slept, start=1):
        full = min(8.0, 2.0 ** (n - 1))
        assert full / 2 <= pause <= full, (n, pause)


def test_the_deadline_is_never_slept_past() -> None:
    # GIVEN 5 s left, pauses of exactly 2 s (a server's hint), calls that take no time
    clock = FakeClock()
    call, tries = failing(*(Throttled("429") for _ in range(10)))
    with pytest.raises(Throttled):
        retrying(call, attempts=10, deadline=clock.deadline(5.0), wait_hint=lambda e: 2.0, sleep=clock.sleep)
    # THEN it tried at 0, 2 and 4 s and stopped: a third pause would end past the deadline
    assert tries == [1, 2, 3] and clock.slept == [2.0, 2.0] and clock.now <= 5.0


def test_the_deadline_keeps_room_for_the_next_call() -> None:
    # GIVEN 5 s left, 1 s pauses, and a next call that needs 3 s of its own
    clock = FakeClock()
    call, tries = failing(*(Throttled("429") for _ in range(10)))
    with pytest.raises(Throttled):
        retrying(
            call,
            attempts=10,
            deadline=clock.deadline(5.0),
            wait_hint=lambda exc: 1.0,
            call_seconds=3.0,
            sleep=clock.sleep,
        )
    assert tries == [1, 2, 3] and clock.slept == [1.0, 1.0]  # at 2 s, 1 + 3 more would pass 5 s


def test_a_deadline_already_spent_allows_no_retry() -> None:
    clock = FakeClock()
    call, tries = failing(Throttled("429"))
    with pytest.raises(Throttled):
        retrying(call, attempts=5, deadline=clock.deadline(0.0), sleep=clock.sleep)
    assert tries == [1] and clock.slept == []


def throttled(headers: dict[str, str]) -> Throttled:
    """A ragstream Throttled translated from an HTTP 429 with ``headers`` (its cause)."""
    response = httpx.Response(429, headers=headers, request=httpx.Request("POST", "http://peer/v1"))
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        try:
            raise Throttled("429") from exc
        except Throttled as translated:
            return translated
    raise AssertionError("not raised")


def test_a_retry_after_hint_is_the_pause() -> None:
    clock = FakeClock()
    call, tries = failing(throttled({"Retry-After": "3"}), throttled({"retry-after-ms": "250"}))
    assert retrying(call, attempts=5, sleep=clock.sleep) == "ok"
    assert tries == [1, 2, 3] and clock.slept == [3.0, 0.25]


def test_a_hint_is_bounded_and_a_hint_past_the_deadline_stops() -> None:
    clock = FakeClock()
    call, _ = failing(throttled({"Retry-After": "3600"}))
    retrying(call, attempts=2, backoff=Backoff(max_hint=60.0), sleep=clock.sleep)
    assert clock.slept == [60.0]
    clock = FakeClock()
    call, tries = failing(throttled({"Retry-After": "30"}))
    with pytest.raises(Throttled):
        retrying(call, attempts=5, deadline=clock.deadline(10.0), sleep=clock.sleep)
    assert tries == [1] and clock.slept == []


def test_retry_after_reads_the_usual_places() -> None:
    assert retry_after(throttled({"Retry-After": "2"})) == 2.0
    assert retry_after(throttled({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0  # in the past
    assert retry_after(throttled({"Retry-After": "soon"})) is None
    assert retry_after(throttled({})) is None
    assert retry_after(ValueError("no response")) is None
    from botocore.exceptions import ClientError  # botocore keeps the headers in ResponseMetadata

    error = {"Code": "ThrottlingException", "Message": "slow down"}
    boto = ClientError({"Error": error, "ResponseMetadata": {"HTTPHeaders": {"retry-after": "4"}}}, "Op")
    assert retry_after(boto) == 4.0
    from qdrant_client.common.client_exceptions import ResourceExhaustedResponse

    assert retry_after(ResourceExhaustedResponse("slow down", 7)) == 7.0
