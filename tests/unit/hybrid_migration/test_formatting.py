from __future__ import annotations

import pytest
from ansible.module_utils.hybrid_migration.formatting import human_bytes, human_duration


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536 * 1024**2, "1.5 GiB"), (5 * 1024**5, "5120.0 TiB")],
)
def test_human_bytes(size: int, text: str) -> None:
    assert human_bytes(size) == text


@pytest.mark.parametrize(("seconds", "text"), [(0, "0.0s"), (6, "6.0s"), (245, "4m 05s"), (3723, "1h 02m 03s")])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
