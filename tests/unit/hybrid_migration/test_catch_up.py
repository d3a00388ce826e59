"""Catch-up passes with an in-memory source and target (the real servers are in tests/integration)."""

from __future__ import annotations

import numpy as np
from ansible.module_utils.hybrid_migration.catch_up import CatchUp, CatchUpOptions

DIM = 2


class ChangingSource:
    """Neo4j nodes as a dict id -> (embedding, updated_at); ``during_pass`` mutates it as a pass reads."""

    def __init__(self, nodes: dict, stamped: bool = True) -> None:
        self.nodes = nodes
        self.stamped = stamped
        self.reads = 0
        self.during_read = None

    def has_updated_at(self) -> bool:
        return self.stamped

    def updated_at_indexed(self) -> bool:
        return False

    def changed_page(self, last: int, until: int, seen: frozenset, limit: int):
        self.reads += 1
        if self.during_read:
            self.during_read(self)
        rows = sorted(
            ((i, e, s) for i, (e, s) in self.nodes.items() if last <= s < until and i not in seen),
            key=lambda r: (r[2], r[0]),
        )[:limit]
        if not rows:
            return [], last, seen
        final = rows[-1][2]
        at_final = frozenset(r[0] for r in rows if r[2] == final)
        return rows, final, (seen | at_final) if final == last else at_final


class StampedTarget:
    def __init__(self) -> None:
        self.stamps: dict[str, int] = {}
        self.upserted: list[str] = []

    def updated_at(self, ids, chunk=1000):
        return {i: self.stamps[i] for i in ids if i in self.stamps}

    def upsert(self, ids, vectors, updated_at) -> int:
        assert vectors.shape == (len(ids), DIM)
        self.upserted += ids
        self.stamps.update(zip(ids, updated_at.tolist(), strict=True))
        return len(ids)


class Clock:
    def __init__(self, start: int) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1000
        return self.now


def run(source, target, since: int, clock: Clock, **options):
    settings = {"dimension": DIM, "clock_skew_ms": 0, "page_size": 2, **options}
    rejects = []
    catch_up = CatchUp(source, target, target, CatchUpOptions(**settings), clock=clock)
    return catch_up.run(since, on_reject=rejects.append), rejects


def test_without_the_property_it_says_so_and_copies_nothing() -> None:
    result, _ = run(ChangingSource({}, stamped=False), StampedTarget(), 0, Clock(0))
    assert result.available is False and "validate.yml -e full_scan=true" in result.reason and result.passes == 0


def test_rows_changed_since_the_copy_started_are_copied_and_older_ones_are_not() -> None:
    nodes = {"old": ([1.0, 0.0], 50), "new1": ([1.0, 1.0], 150), "new2": ([2.0, 1.0], 160), "new3": ([3.0, 1.0], 160)}
    target = StampedTarget()
    result, _ = run(ChangingSource(nodes), target, 100, Clock(10_000))
    assert sorted(target.upserted) == ["new1", "new2", "new3"]
    assert result.copied == 3 and result.settled and result.passes == 2  # the second pass finds nothing new


def test_rows_milvus_already_holds_with_the_same_stamp_are_not_written() -> None:
    nodes = {"a": ([1.0, 0.0], 150), "b": ([1.0, 1.0], 160)}
    target = StampedTarget()
    target.stamps["a"] = 150  # dual-write got there first
    result, _ = run(ChangingSource(nodes), target, 100, Clock(10_000))
    assert target.upserted == ["b"] and result.already_current == 1 and result.copied == 1


def test_a_change_made_during_a_pass_is_caught_by_the_next_pass() -> None:
    clock = Clock(10_000)
    nodes = {"a": ([1.0, 0.0], 150)}
    source = ChangingSource(nodes)

    def write_once(src) -> None:
        if src.reads == 1:
            src.nodes["late"] = ([5.0, 5.0], clock.now + 1)

    source.during_read = write_once
    target = StampedTarget()
    result, _ = run(source, target, 100, clock)
    assert sorted(target.upserted) == ["a", "late"] and result.passes == 3 and result.settled


def test_changes_that_never_stop_end_after_max_passes_with_a_clear_message() -> None:
    clock = Clock(10_000)
    source = ChangingSource({"first": ([1.0, 1.0], 5)})

    def keep_writing(src) -> None:
        src.nodes[f"n{src.reads}"] = ([1.0, 1.0], clock.now + 1)

    source.during_read = keep_writing
    result, _ = run(source, StampedTarget(), 0, clock, max_passes=3)
    assert result.passes == 3 and result.settled is False and "dual-write carries them" in result.message


def test_bad_rows_are_rejected_with_a_reason_and_the_rest_moves() -> None:
    nodes = {"good": ([1.0, 0.0], 150), "bad": ([1.0], 150), "nan": ([float("nan"), 1.0], 151)}
    target = StampedTarget()
    result, rejects = run(ChangingSource(nodes), target, 100, Clock(10_000))
    assert target.upserted == ["good"] and result.rejected >= 2
    assert {r.kind for r in rejects} == {"wrong_dimension", "not_finite"}


def test_check_mode_counts_and_writes_nothing() -> None:
    nodes = {"a": ([1.0, 0.0], 150), "b": ([1.0, 1.0], 160)}
    target = StampedTarget()
    result, _ = run(ChangingSource(nodes), target, 100, Clock(10_000), check_mode=True)
    assert target.upserted == [] and result.copied == 2 and result.passes == 1


def test_the_clock_skew_margin_reaches_back_before_the_moment() -> None:
    nodes = {"skewed": ([1.0, 0.0], 95)}
    target = StampedTarget()
    run(ChangingSource(nodes), target, 100, Clock(10_000), clock_skew_ms=10)
    assert target.upserted == ["skewed"]
    assert np.array_equal(np.asarray([target.stamps["skewed"]]), np.asarray([95]))
