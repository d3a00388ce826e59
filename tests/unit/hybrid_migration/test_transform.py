from __future__ import annotations

import math

import numpy as np
import pytest
from ansible.module_utils.hybrid_migration.transform import check_id, normalize, snippet

DIM = 4


def good(seed: int = 0) -> list[float]:
    return [float(seed + n) / 10 for n in range(DIM)]


def test_valid_rows_become_float32_columns() -> None:
    batch = normalize([("a", good(1), 5), ("b", good(2), 6)], DIM, 512)
    assert batch.ids == ["a", "b"] and batch.rejects == []
    assert batch.vectors.dtype == np.float32 and batch.vectors.shape == (2, DIM)
    assert batch.updated_at.tolist() == [5, 6]
    assert np.allclose(batch.vectors[1], np.asarray(good(2), dtype=np.float32))


@pytest.mark.parametrize(
    ("row", "kind", "reason"),
    [
        (("x", None, 0), "missing_embedding", "no embedding"),
        (("x", good()[:3], 0), "wrong_dimension", "dimension 3, expected 4"),
        (("x", [], 0), "wrong_dimension", "dimension 0, expected 4"),
        (("x", [1.0, math.nan, 0.0, 0.0], 0), "not_finite", "NaN or Inf in embedding (after float32 conversion)"),
        (("x", [1.0, math.inf, 0.0, 0.0], 0), "not_finite", "NaN or Inf in embedding (after float32 conversion)"),
        (("x", [1e39, 0.0, 0.0, 0.0], 0), "not_finite", "NaN or Inf in embedding (after float32 conversion)"),
        (("x", ["1.5", "2", "3", "4"], 0), "not_numeric", "embedding is not a list of numbers (it holds str)"),
        (("x", [True, False, True, True], 0), "not_numeric", "embedding is not a list of numbers (it holds bool)"),
        (("x", "[0.1, 0.2]", 0), "not_numeric", "embedding is not a list of numbers (it is a str)"),
        ((None, good(), 0), "missing_id", "missing id"),
        (("", good(), 0), "empty_id", "empty id"),
        (("y" * 513, good(), 0), "id_too_long", "id longer than 512 bytes (513 bytes)"),
        ((1.5, good(), 0), "bad_id_type", "id is a float, not a string"),
    ],
)
def test_each_bad_row_is_rejected_with_its_reason_and_the_rest_moves(row, kind: str, reason: str) -> None:
    batch = normalize([("ok-1", good(1), 1), row, ("ok-2", good(2), 2)], DIM, 512)
    assert batch.ids == ["ok-1", "ok-2"]
    assert [(r.kind, r.reason) for r in batch.rejects] == [(kind, reason)]


def test_id_length_is_counted_in_utf8_bytes() -> None:
    assert check_id("é" * 256, 512)[0] == "é" * 256
    assert check_id("é" * 257, 512)[1].kind == "id_too_long"


def test_integer_ids_become_text() -> None:
    assert check_id(424242, 512) == ("424242", None)


def test_ids_with_quotes_backslashes_and_non_ascii_pass_unchanged() -> None:
    tricky = ['a"b', "c'd", "e\\f", "ünï-東京-🎬"]
    batch = normalize([(i, good(), 0) for i in tricky], DIM, 512)
    assert batch.ids == tricky


def test_duplicates_are_rejected_after_the_first() -> None:
    seen = {"a"}
    batch = normalize([("a", good(), 0), ("b", good(), 0), ("b", good(), 0)], DIM, 512, seen_ids=seen)
    assert batch.ids == ["b"]
    assert [r.kind for r in batch.rejects] == ["duplicate_id", "duplicate_id"]


def test_missing_or_odd_updated_at_becomes_zero() -> None:
    batch = normalize([("a", good(), None), ("b", good(), "yesterday"), ("c", good(), True)], DIM, 512)
    assert batch.updated_at.tolist() == [0, 0, 0]


def test_all_rejected_gives_empty_columns() -> None:
    batch = normalize([("a", None, 0)], DIM, 512)
    assert len(batch) == 0 and batch.vectors.shape == (0, DIM)


def test_snippets_are_short() -> None:
    assert snippet(list(range(1000))).endswith("(1000 items)")
    assert len(snippet("z" * 1000)) == 120
