from __future__ import annotations

import pytest
from ansible.module_utils.hybrid_migration.errors import TerminalError, TransientError
from ansible.module_utils.hybrid_migration.retry import RetryPolicy, with_retries


def test_delays_double_up_to_the_bound() -> None:
    assert RetryPolicy(attempts=6, initial_delay=1, max_delay=5).delays() == [1, 2, 4, 5, 5]


def test_transient_errors_are_retried_until_success() -> None:
    calls, waits = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("Milvus unreachable")
        return "ok"

    assert with_retries(flaky, RetryPolicy(attempts=5, initial_delay=1), sleep=waits.append) == "ok"
    assert len(calls) == 3 and len(waits) == 2
    assert 0.8 <= waits[0] <= 1.2 and 1.6 <= waits[1] <= 2.4


def test_giving_up_says_so() -> None:
    def down() -> None:
        raise TransientError("Milvus unreachable")

    with pytest.raises(TransientError, match="gave up after 3 attempts"):
        with_retries(down, RetryPolicy(attempts=3), sleep=lambda _: None)


def test_terminal_errors_are_not_retried() -> None:
    calls = []

    def refused() -> None:
        calls.append(1)
        raise TerminalError("schema mismatch")

    with pytest.raises(TerminalError):
        with_retries(refused, RetryPolicy(attempts=5), sleep=lambda _: None)
    assert calls == [1]
