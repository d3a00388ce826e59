"""Validation's merge, confirmation, gate and repair with in-memory sides (the real servers are in
tests/integration/test_embeddings_validate.py)."""

from __future__ import annotations

import numpy as np
import pytest
from ansible.module_utils.hybrid_migration.neo4j_source import Page
from ansible.module_utils.hybrid_migration.validation import (
    DIMENSION,
    MISMATCH,
    MISSING,
    ORPHAN,
    ValidateOptions,
    Validation,
    distances,
    gate_message,
    success_rate,
)

DIM = 4


def vector(n: int) -> list[float]:
    return [float(n), 1.0, 2.0, 3.0]


class MemorySource:
    """Neo4j as a list of (id, embedding, updated_at) rows."""

    def __init__(self, rows: list[tuple]) -> None:
        self.rows = rows
        self.sampled: list[str] = []

    @property
    def strings(self) -> list[tuple]:
        return sorted((r for r in self.rows if isinstance(r[0], str)), key=lambda r: r[0])

    def string_id_page(self, last: str, seen_at_last: int, limit: int) -> Page:
        after = [r for r in self.strings if r[0] > last or (r[0] == last and seen_at_last == 0)]
        rows = after[:limit]
        return Page(rows, rows[-1][0] if rows else last, 1 if rows else seen_at_last)

    def other_id_pages(self, limit: int):
        others = [r for r in self.rows if not isinstance(r[0], str)]
        for start in range(0, len(others), limit):
            yield Page(others[start : start + limit], None, 0)

    def existing_string_ids(self, ids: list[str]) -> set[str]:
        return {r[0] for r in self.rows if isinstance(r[0], str) and r[0] in ids}

    def rows_for_ids(self, ids: list[str]) -> list[tuple]:
        wanted = set(ids)
        return [r for r in self.rows if (r[0] if isinstance(r[0], str) else str(r[0])) in wanted]

    def sample_string_ids(self, size: int) -> list[str]:
        ids = [r[0] for r in self.strings]
        self.sampled = [ids[i] for i in np.random.default_rng(1).choice(len(ids), min(size, len(ids)), False)]
        return self.sampled


class MemoryTarget:
    """Milvus as a dict id -> float32 vector, read in byte order of the ids unless told otherwise."""

    def __init__(self, stored: dict[str, np.ndarray], order=None) -> None:
        self.stored = stored
        self.order = order or (lambda ids: sorted(ids, key=lambda i: i.encode()))
        self.writes = 0

    def page(self, after: str | None, page_size: int = 5000):
        ordered = self.order(list(self.stored))
        start = 0 if after is None else ordered.index(after) + 1
        ids = ordered[start : start + page_size]
        return ids, np.stack([self.stored[i] for i in ids]) if ids else np.empty((0, DIM), np.float32)

    def vectors(self, ids: list[str], chunk: int = 1000) -> dict[str, np.ndarray]:
        return {i: self.stored[i] for i in ids if i in self.stored}

    def count(self) -> int:
        return len(self.stored)

    def delete(self, ids: list[str], chunk: int = 1000) -> int:
        self.writes += 1
        for i in ids:
            self.stored.pop(i, None)
        return len(ids)

    def upsert(self, ids: list[str], vectors: np.ndarray, updated_at: np.ndarray) -> int:
        self.writes += 1
        for i, v in zip(ids, vectors, strict=True):
            self.stored[i] = np.asarray(v, np.float32)
        return len(ids)


def clean_pair(count: int = 50) -> tuple[MemorySource, MemoryTarget]:
    rows = [(f"m-{n:04d}", vector(n), 1000 + n) for n in range(count)]
    target = MemoryTarget({r[0]: np.asarray(r[1], np.float32) for r in rows})
    return MemorySource(rows), target


def validate(source, target, **options) -> dict:
    settings = {"dimension": DIM, "full_scan": True, "source_page_size": 7, "target_page_size": 5, **options}
    result = Validation(source, target, target, ValidateOptions(**settings)).run()
    return result.__dict__


def counts(result: dict) -> dict[str, int]:
    return {name: category["count"] for name, category in result["categories"].items()}


def test_clean_data_matches_completely() -> None:
    source, target = clean_pair()
    result = validate(source, target)
    assert (result["source_rows"], result["matching"], result["success_rate"], result["passed"]) == (50, 50, 1.0, True)
    assert counts(result) == {MISSING: 0, MISMATCH: 0, ORPHAN: 0, DIMENSION: 0}
    assert result["milvus_rows"] == 50 and result["changed"] is False


def test_each_kind_of_difference_is_found_exactly() -> None:
    source, target = clean_pair()
    del target.stored["m-0003"], target.stored["m-0040"]
    target.stored["m-0010"] = np.asarray(vector(999), np.float32)
    target.stored["orphan"] = np.asarray(vector(1), np.float32)
    source.rows.append(("short", [1.0, 2.0], 5))
    target.stored["short"] = np.asarray(vector(2), np.float32)  # Milvus holds a row the source cannot have
    result = validate(source, target, min_success_rate=0.5)
    assert counts(result) == {MISSING: 2, MISMATCH: 1, ORPHAN: 2, DIMENSION: 1}
    assert result["categories"][MISSING]["samples"] == ["m-0003", "m-0040"]
    assert result["categories"][MISMATCH]["samples"] == ["m-0010"]
    assert sorted(result["categories"][ORPHAN]["samples"]) == ["orphan", "short"]
    assert result["source_rejected_by_kind"] == {"wrong_dimension": 1}
    assert result["matching"] == 47 and result["success_rate"] == pytest.approx(47 / 50)


def test_the_gate_fails_below_the_minimum_and_says_by_how_much() -> None:
    source, target = clean_pair(100)
    for n in range(3):
        del target.stored[f"m-{n:04d}"]
    result = validate(source, target, min_success_rate=0.99)
    assert result["passed"] is False
    assert "97.0000% is 2.0000 points below min_success_rate 99.0000%" in result["message"]
    assert "3 missing in milvus" in result["message"]


def test_a_tiny_difference_under_the_tolerance_is_equal_and_one_over_it_is_not() -> None:
    source, target = clean_pair(3)
    target.stored["m-0000"] = target.stored["m-0000"] + np.float32(4e-6)
    target.stored["m-0001"] = target.stored["m-0001"] + np.float32(1e-4)
    result = validate(source, target)
    assert counts(result)[MISMATCH] == 1 and result["categories"][MISMATCH]["samples"] == ["m-0001"]


def test_repair_fixes_everything_and_a_second_run_finds_nothing() -> None:
    source, target = clean_pair()
    del target.stored["m-0003"]
    target.stored["m-0010"] = np.asarray(vector(999), np.float32)
    target.stored["orphan"] = np.asarray(vector(1), np.float32)
    result = validate(source, target, fix=True)
    assert result["fix"]["upserted"] == 2 and result["fix"]["deleted"] == 1
    assert result["fix"]["verified"] == 3 and result["fix"]["remaining"] == 0
    assert result["fix"]["success_rate_after"] == 1.0 and result["changed"] is True
    again = validate(source, target, fix=True)
    assert counts(again) == {MISSING: 0, MISMATCH: 0, ORPHAN: 0, DIMENSION: 0}
    assert again["changed"] is False and again["success_rate"] == 1.0


def test_repair_in_check_mode_reports_and_writes_nothing() -> None:
    source, target = clean_pair()
    del target.stored["m-0003"]
    target.stored["orphan"] = np.asarray(vector(1), np.float32)
    result = validate(source, target, fix=True, check_mode=True)
    assert target.writes == 0 and "m-0003" not in target.stored and "orphan" in target.stored
    assert result["fix"]["upserted"] == 1 and result["fix"]["deleted"] == 1 and result["fix"]["applied"] is False
    assert result["changed"] is True and "would repair" in result["message"]


def test_repair_that_does_not_stick_is_reported_as_remaining() -> None:
    source, target = clean_pair(5)
    del target.stored["m-0002"]
    target.upsert = lambda ids, vectors, updated_at: len(ids)  # acknowledges, keeps nothing
    result = validate(source, target, fix=True, min_success_rate=0.99)
    assert result["fix"]["remaining"] == 1 and result["fix"]["remaining_samples"] == ["m-0002"]
    assert result["passed"] is False


def test_a_different_string_order_on_the_target_never_makes_false_findings() -> None:
    source, target = clean_pair(30)
    target.order = lambda ids: sorted(ids, reverse=True)
    result = validate(source, target, confirm_batch=4)
    assert counts(result) == {MISSING: 0, MISMATCH: 0, ORPHAN: 0, DIMENSION: 0}
    assert result["matching"] == 30


def test_pending_one_sided_ids_stay_bounded() -> None:
    source, target = clean_pair(200)
    target.stored.clear()
    options = ValidateOptions(dimension=DIM, full_scan=True, confirm_batch=16, source_page_size=7)
    validation = Validation(source, target, target, options)
    highest = 0
    confirm = validation._confirm_source_only

    def watched() -> None:
        nonlocal highest
        highest = max(highest, len(validation._pending_source))
        confirm()

    validation._confirm_source_only = watched
    result = validation.run()
    assert result.categories[MISSING]["count"] == 200 and highest <= 16 + 7  # one batch past the bound at most
    assert len(result.categories[MISSING]["samples"]) == 10


def test_integer_ids_are_compared_by_their_text_and_a_collision_is_a_duplicate() -> None:
    rows = [("a", vector(1), 1), (42, vector(2), 1), (7, vector(3), 1), ("7", vector(4), 1)]
    target = MemoryTarget({"a": np.asarray(vector(1), np.float32), "42": np.asarray(vector(2), np.float32)})
    target.stored["7"] = np.asarray(vector(4), np.float32)
    result = validate(MemorySource(rows), target)
    assert counts(result) == {MISSING: 0, MISMATCH: 0, ORPHAN: 0, DIMENSION: 0}
    assert result["source_rows"] == 3 and result["source_rejected_by_kind"] == {"duplicate_id": 1}


def test_sample_mode_checks_sampled_ids_and_says_orphans_were_not_checked() -> None:
    source, target = clean_pair(100)
    del target.stored["m-0050"]
    result = validate(source, target, full_scan=False, sample_size=100)
    assert result["mode"] == "sample" and result["source_rows"] == 100
    assert counts(result)[MISSING] == 1 and result["categories"][ORPHAN]["checked"] is False
    assert result["milvus_rows"] == 99


def test_helpers() -> None:
    assert distances(np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)) == pytest.approx([3**0.5] * 2)
    with pytest.raises(ValueError):
        distances(np.zeros((2, 3)), np.zeros((3, 3)))
    assert success_rate(0, 0) == 1.0 and success_rate(99, 100) == 0.99
    assert "0.5000 points below" in gate_message(0.985, 0.99, {MISSING: 2})
