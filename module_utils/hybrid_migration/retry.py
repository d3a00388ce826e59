"""Bounded exponential backoff for transient failures; terminal ones pass through at once."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import TransientError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. The default covers a Milvus restart (20-40 s)."""

    attempts: int = 10
    initial_delay: float = 0.5
    max_delay: float = 20.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RetryPolicy:
        """The policy a module's retry_* options describe."""
        return cls(options["retry_attempts"], options["retry_initial_delay"], options["retry_max_delay"])

    def delays(self) -> list[float]:
        """The waits between attempts, doubling up to ``max_delay``."""
        return [min(self.max_delay, self.initial_delay * 2**n) for n in range(self.attempts - 1)]


def with_retries(
    operation: Callable[[], T],
    policy: RetryPolicy,
    on_retry: Callable[[int, TransientError, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``operation``, retrying ``TransientError`` with jittered backoff.

    Raises:
        TransientError: still failing after ``policy.attempts`` tries (the last error).
        Exception: anything else, unchanged, at the first occurrence.
    """
    delays = policy.delays()
    for attempt in range(policy.attempts):
        try:
            return operation()
        except TransientError as error:
            if attempt >= len(delays):
                raise TransientError(f"{error} (gave up after {policy.attempts} attempts)") from error
            delay = delays[attempt] * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
            if on_retry:
                on_retry(attempt + 1, error, delay)
            sleep(delay)
    raise AssertionError("unreachable")
