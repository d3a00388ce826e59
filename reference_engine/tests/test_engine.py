"""Engine behaviour per storage mode, on in-memory stores."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hybrid_migration.engine_control import MODES
from hybrid_migration.errors import TerminalError
from reference_engine.engine import (
    BadRequest,
    Engine,
    GroupCommit,
    NotFound,
    RepairQueue,
    parse_embedding,
    top_k_overlap,
)

from .fakes import FakeClock, FakeGraph, FakeVectors, make_engine, sample

Q = [1.0, 0.0, 0.0]
A = [0.9, 0.1, 0.0]
B = [0.8, 0.2, 0.0]
C = [0.7, 0.3, 0.0]
D = [0.0, 1.0, 0.0]


@pytest.fixture
def setup() -> Iterator[tuple[Engine, FakeGraph, FakeVectors, FakeClock]]:
    engine, graph, vectors, clock = make_engine()
    yield engine, graph, vectors, clock
    engine.close()


@pytest.fixture
def seeded(
    setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock],
) -> tuple[Engine, FakeGraph, FakeVectors, FakeClock]:
    """Neo4j holds q, a, b, c, d; Milvus only q, a, d (b and c were written before dual writes began).

    For q with k=3, Neo4j answers [a, b, c] and Milvus [a, d].
    """
    engine, graph, vectors, clock = setup
    for item_id, vector in (("b", B), ("c", C)):
        engine.write(item_id, {"embedding": vector})
    engine.serve("dual_write", 1, "test")
    for item_id, vector in (("q", Q), ("a", A), ("d", D)):
        engine.write(item_id, {"embedding": vector})
    assert set(graph.items) == {"q", "a", "b", "c", "d"}
    assert set(vectors.rows) == {"q", "a", "d"}
    return engine, graph, vectors, clock


# parse_embedding and top_k_overlap


@pytest.mark.parametrize("value", [None, "1,2,3", {"0": 1.0}, (1.0, 2.0, 3.0), 3.0])
def test_parse_embedding_refuses_what_is_not_a_list(value: object) -> None:
    with pytest.raises(BadRequest, match="JSON list"):
        parse_embedding(value, 3)


@pytest.mark.parametrize("value", [[], [1.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
def test_parse_embedding_refuses_wrong_dimension(value: list[float]) -> None:
    with pytest.raises(BadRequest, match=f"dimension {len(value)}, expected 3"):
        parse_embedding(value, 3)


@pytest.mark.parametrize("value", [[1.0, "2", 3.0], [1.0, None, 3.0], [[1.0], 2.0, 3.0], [True, 0.0, 1.0]])
def test_parse_embedding_refuses_non_numbers_and_booleans(value: list[object]) -> None:
    with pytest.raises(BadRequest, match="only numbers"):
        parse_embedding(value, 3)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_parse_embedding_refuses_nan_and_infinity(bad: float) -> None:
    with pytest.raises(BadRequest, match="NaN or Infinity"):
        parse_embedding([0.5, bad, 0.5], 3)


def test_parse_embedding_refuses_an_integer_too_large_for_a_float() -> None:
    # JSON allows arbitrarily long integers; float() of one raises OverflowError, which the
    # server would answer with 503 instead of telling the client its input is wrong.
    with pytest.raises(BadRequest):
        parse_embedding([1, 10**400, 0], 3)


def test_parse_embedding_returns_floats() -> None:
    parsed = parse_embedding([1, -2, 0.5], 3)
    assert parsed == [1.0, -2.0, 0.5]
    assert all(type(x) is float for x in parsed)


@pytest.mark.parametrize(
    ("primary", "shadow", "expected"),
    [
        ([], ["a"], 1.0),
        (["a", "b"], ["b", "a"], 1.0),
        (["a", "b", "c", "d"], ["a", "x", "c", "y"], 0.5),
        (["a", "b"], [], 0.0),
        (["a", "b", "c"], ["c", "z"], 1 / 3),
    ],
)
def test_top_k_overlap(primary: list[str], shadow: list[str], expected: float) -> None:
    assert top_k_overlap(primary, shadow) == pytest.approx(expected)


# Writes


def test_neo4j_only_write_never_touches_milvus(setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine, graph, vectors, clock = setup
    answer = engine.write("m1", {"embedding": [1, 0, 0]})
    assert answer == {"id": "m1", "updated_at": int(clock.now * 1000), "mode": "neo4j_only", "milvus": "not_written"}
    assert graph.items["m1"] == ([1.0, 0.0, 0.0], int(clock.now * 1000))
    assert vectors.upsert_calls == 0
    assert sample(engine, "dual_write_attempts_total") == 0


@pytest.mark.parametrize("mode", ["dual_write", "shadow", "hybrid"])
def test_write_reaches_both_stores(setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock], mode: str) -> None:
    engine, graph, vectors, clock = setup
    engine.serve(mode, 1, "test")
    answer = engine.write("m1", {"embedding": [0, 1, 0]})
    stamp = int(clock.now * 1000)
    assert answer["milvus"] == "written"
    assert answer["mode"] == mode
    assert graph.items["m1"] == ([0.0, 1.0, 0.0], stamp)
    assert vectors.rows["m1"] == ([0.0, 1.0, 0.0], stamp)
    assert sample(engine, "dual_write_attempts_total") == 1
    assert sample(engine, "dual_write_success_total") == 1
    assert sample(engine, "dual_write_milvus_errors_total") == 0


@pytest.mark.parametrize(
    ("item_id", "body", "message"),
    [
        ("", {"embedding": [1, 0, 0]}, "id must be"),
        ("x" * 513, {"embedding": [1, 0, 0]}, "id must be"),
        ("m1", [1, 0, 0], "JSON object"),
        ("m1", {"vector": [1, 0, 0]}, "JSON list"),
        ("m1", {"embedding": [1, 0]}, "dimension 2"),
    ],
)
def test_write_refuses_bad_requests_before_storing(
    setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock], item_id: str, body: object, message: str
) -> None:
    engine, graph, vectors, _ = setup
    engine.serve("dual_write", 1, "test")
    with pytest.raises(BadRequest, match=message):
        engine.write(item_id, body)
    assert graph.writes == []
    assert vectors.upsert_calls == 0


def test_failing_milvus_never_fails_the_write(setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine, graph, vectors, _ = setup
    engine.serve("dual_write", 1, "test")
    vectors.fail = True
    answer = engine.write("m1", {"embedding": [1, 0, 0]})
    assert answer["milvus"] == "queued_for_repair"
    assert "m1" in graph.items
    assert vectors.upsert_calls == 1
    assert engine.repair_queue.take(10) == ["m1"]
    assert sample(engine, "dual_write_attempts_total") == 1
    assert sample(engine, "dual_write_success_total") == 0
    assert sample(engine, "dual_write_milvus_errors_total") == 1
    assert sample(engine, "dual_write_repair_queue_size") == 1


def test_milvus_marked_down_queues_without_calling_it(
    setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock],
) -> None:
    engine, _, vectors, clock = setup  # retry after 5 s
    engine.serve("hybrid", 1, "test")
    vectors.fail = True
    assert engine.write("m1", {"embedding": [1, 0, 0]})["milvus"] == "queued_for_repair"
    vectors.fail = False
    clock.advance(4.9)
    assert engine.write("m2", {"embedding": [0, 1, 0]})["milvus"] == "queued_for_repair"
    assert vectors.upsert_calls == 1, "Milvus was called while marked down"
    clock.advance(0.2)
    assert engine.write("m3", {"embedding": [0, 0, 1]})["milvus"] == "written"
    assert vectors.upsert_calls == 2
    assert set(vectors.rows) == {"m3"}
    assert engine.repair_queue.take(10) == ["m1", "m2"]
    assert sample(engine, "dual_write_attempts_total") == 3
    assert sample(engine, "dual_write_success_total") == 1
    assert sample(engine, "dual_write_milvus_errors_total") == 2
    assert sample(engine, "dual_write_repair_queue_size") == 2


def test_repair_writes_neo4js_current_value(setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine, _, vectors, clock = setup
    engine.serve("dual_write", 1, "test")
    vectors.fail = True
    engine.write("m1", {"embedding": [1, 0, 0]})
    clock.advance(1)
    vectors.fail = False  # still marked down: the second write is queued too
    assert engine.write("m1", {"embedding": [0, 1, 0]})["milvus"] == "queued_for_repair"
    assert len(engine.repair_queue) == 1
    assert sample(engine, "dual_write_repair_queue_size") == 1

    assert engine.drain_repairs() == 1
    assert vectors.rows["m1"] == ([0.0, 1.0, 0.0], int(clock.now * 1000))
    assert len(engine.repair_queue) == 0
    assert sample(engine, "dual_write_repaired_total") == 1
    assert sample(engine, "dual_write_repair_queue_size") == 0
    assert engine.drain_repairs() == 0
    # A successful repair clears the down mark: the next write goes straight to Milvus.
    assert engine.write("m2", {"embedding": [0, 0, 1]})["milvus"] == "written"


def test_repair_keeps_ids_while_milvus_still_fails(setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine, _, vectors, _ = setup
    engine.serve("dual_write", 1, "test")
    vectors.fail = True
    engine.write("m1", {"embedding": [1, 0, 0]})
    with pytest.raises(ConnectionError):
        engine.drain_repairs()
    assert engine.repair_queue.take(10) == ["m1"]
    assert sample(engine, "dual_write_repaired_total") == 0


def test_repair_skips_ids_neo4j_no_longer_has(setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine, graph, vectors, _ = setup
    engine.serve("dual_write", 1, "test")
    vectors.fail = True
    engine.write("m1", {"embedding": [1, 0, 0]})
    vectors.fail = False
    del graph.items["m1"]
    assert engine.drain_repairs() == 0
    assert len(engine.repair_queue) == 0
    assert vectors.rows == {}


def test_write_during_repair_read_is_not_overwritten_by_the_repair(
    setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock],
) -> None:
    """A write that lands between the repair's Neo4j read and its Milvus upsert must win."""
    engine, graph, vectors, clock = setup
    engine.serve("dual_write", 1, "test")
    vectors.fail = True
    engine.write("m1", {"embedding": [1, 0, 0]})
    vectors.fail = False
    clock.advance(10)  # no longer marked down: the concurrent write reaches Milvus itself

    def concurrent_write() -> None:
        clock.advance(1)
        assert engine.write("m1", {"embedding": [0, 1, 0]})["milvus"] == "written"

    graph.before_current = concurrent_write
    while engine.drain_repairs():
        pass
    assert vectors.rows["m1"] == graph.items["m1"]
    assert vectors.rows["m1"][0] == [0.0, 1.0, 0.0]
    assert len(engine.repair_queue) == 0


def test_failed_write_during_repair_stays_queued(setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    """A write whose Milvus upsert fails while a repair of the same id is under way must not be forgotten."""
    engine, graph, vectors, clock = setup
    engine.serve("dual_write", 1, "test")
    vectors.fail = True
    engine.write("m1", {"embedding": [1, 0, 0]})
    vectors.fail = False
    clock.advance(10)

    def concurrent_failed_write() -> None:
        clock.advance(1)
        vectors.fail = True
        assert engine.write("m1", {"embedding": [0, 1, 0]})["milvus"] == "queued_for_repair"
        vectors.fail = False

    graph.before_current = concurrent_failed_write
    engine.drain_repairs()
    assert engine.repair_queue.take(10) == ["m1"], "the second failed write was dropped from the queue"
    while engine.drain_repairs():
        pass
    assert vectors.rows["m1"] == graph.items["m1"]
    assert vectors.rows["m1"][0] == [0.0, 1.0, 0.0]


def test_repair_keeps_ids_when_the_second_read_fails(setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine, graph, vectors, _ = setup
    engine.serve("dual_write", 1, "test")
    vectors.fail = True
    engine.write("m1", {"embedding": [1, 0, 0]})
    vectors.fail = False
    original = graph.current
    calls: list[list[str]] = []

    def flaky(ids: list[str]) -> list[tuple[str, list[float], int]]:
        calls.append(ids)
        if len(calls) == 2:
            raise ConnectionError("neo4j went away")
        return original(ids)

    graph.current = flaky  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        engine.drain_repairs()
    assert engine.repair_queue.take(10) == ["m1"]
    assert engine.drain_repairs() == 1
    assert len(engine.repair_queue) == 0


# Repair journal


def test_repair_journal_survives_a_restart(tmp_path: Path) -> None:
    journal = tmp_path / "repairs"
    queue = RepairQueue(journal)
    for item_id in ("a", "b", "a", "c"):
        queue.add(item_id)
    assert len(queue) == 3
    reopened = RepairQueue(journal)
    assert reopened.take(10) == ["a", "b", "c"]
    reopened.done(["a", "c"])
    assert RepairQueue(journal).take(10) == ["b"]
    RepairQueue(journal).done(["b"])
    assert len(RepairQueue(journal)) == 0


def test_repair_journal_missing_file_is_an_empty_queue(tmp_path: Path) -> None:
    assert len(RepairQueue(tmp_path / "absent")) == 0


def test_engine_queues_into_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "repairs"
    engine, _, vectors, _ = make_engine(repair_queue=RepairQueue(journal))
    try:
        engine.serve("dual_write", 1, "test")
        vectors.fail = True
        engine.write("m1", {"embedding": [1, 0, 0]})
        engine.write("m2", {"embedding": [0, 1, 0]})
    finally:
        engine.close()
    assert RepairQueue(journal).take(10) == ["m1", "m2"]
    restarted, graph, vectors, _ = make_engine(repair_queue=RepairQueue(journal))
    try:
        assert sample(restarted, "dual_write_repair_queue_size") == 2
        graph.write("m1", [1.0, 0.0, 0.0], 1)
        graph.write("m2", [0.0, 1.0, 0.0], 2)
        assert restarted.drain_repairs() == 2
    finally:
        restarted.close()
    assert len(RepairQueue(journal)) == 0


# Searches


@pytest.mark.parametrize("mode", ["neo4j_only", "dual_write"])
def test_similar_is_served_by_neo4j(seeded: tuple[Engine, FakeGraph, FakeVectors, FakeClock], mode: str) -> None:
    engine, _, vectors, _ = seeded
    engine.serve(mode, 2, "test")
    answer = engine.similar("q", 3)
    assert answer["served_by"] == "neo4j"
    assert answer["mode"] == mode
    assert answer["instance"] == "engine-test"
    assert [hit["id"] for hit in answer["results"]] == ["a", "b", "c"]
    assert answer["results"][0]["score"] == pytest.approx(0.9 / math.sqrt(0.82))
    assert vectors.search_calls == 0
    assert sample(engine, "neo4j_search_latency_ms_count") == 1


def test_similar_excludes_the_item_itself(seeded: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine, _, _, _ = seeded
    answer = engine.similar("q", 100)
    ids = [hit["id"] for hit in answer["results"]]
    assert "q" not in ids
    assert sorted(ids) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("k", [0, -1, 101])
def test_similar_refuses_k_out_of_range(seeded: tuple[Engine, FakeGraph, FakeVectors, FakeClock], k: int) -> None:
    with pytest.raises(BadRequest, match="k must be"):
        seeded[0].similar("q", k)


@pytest.mark.parametrize("k", [1, 100])
def test_similar_accepts_k_at_the_bounds(seeded: tuple[Engine, FakeGraph, FakeVectors, FakeClock], k: int) -> None:
    assert len(seeded[0].similar("q", k)["results"]) == min(k, 4)


def test_similar_unknown_id_is_not_found(seeded: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    with pytest.raises(NotFound, match="nope"):
        seeded[0].similar("nope", 3)


def test_shadow_serves_neo4j_and_compares_with_milvus(
    seeded: tuple[Engine, FakeGraph, FakeVectors, FakeClock],
) -> None:
    engine, _, vectors, _ = seeded
    engine.serve("shadow", 2, "test")
    answer = engine.similar("q", 3)
    engine.wait_for_shadow()
    assert answer["served_by"] == "neo4j"
    assert [hit["id"] for hit in answer["results"]] == ["a", "b", "c"]
    assert vectors.search_calls == 1
    assert sample(engine, "shadow_comparisons_total") == 1
    assert sample(engine, "shadow_top_k_overlap_count") == 1
    # Milvus answered [a, d]: one of Neo4j's three.
    assert sample(engine, "shadow_top_k_overlap_sum") == pytest.approx(1 / 3)
    assert sample(engine, "shadow_top_k_overlap_bucket", {"le": "0.5"}) == 1
    assert sample(engine, "shadow_latency_difference_ms_count") == 1


def test_shadow_with_failing_milvus_still_answers(seeded: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine, _, vectors, _ = seeded
    engine.serve("shadow", 2, "test")
    vectors.fail = True
    assert engine.similar("q", 3)["served_by"] == "neo4j"
    engine.wait_for_shadow()
    assert sample(engine, "milvus_search_errors_total") == 1
    assert sample(engine, "shadow_comparisons_total") == 0


def test_hybrid_is_served_by_milvus_and_hydrated(seeded: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine, _, vectors, _ = seeded
    engine.serve("hybrid", 2, "test")
    answer = engine.similar("q", 3)
    assert answer["served_by"] == "milvus"
    assert [hit["id"] for hit in answer["results"]] == ["a", "d"]
    assert answer["results"][0] == {
        "id": "a",
        "score": pytest.approx(0.9 / math.sqrt(0.82)),
        "title": "Title of a",
        "kind": "movie",
        "release_year": 1999,
    }
    assert vectors.search_calls == 1
    assert sample(engine, "milvus_search_latency_ms_count") == 1
    assert sample(engine, "hybrid_neo4j_fallbacks_total") == 0


def test_hybrid_falls_back_to_neo4j(seeded: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine, _, vectors, _ = seeded
    engine.serve("hybrid", 2, "test")
    vectors.fail = True
    answer = engine.similar("q", 3)
    assert answer["served_by"] == "neo4j"
    assert [hit["id"] for hit in answer["results"]] == ["a", "b", "c"]
    assert "title" not in answer["results"][0]
    assert sample(engine, "hybrid_neo4j_fallbacks_total") == 1
    assert sample(engine, "milvus_search_errors_total") == 1


def test_neo4j_search_failure_is_counted_and_raised(seeded: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine, graph, _, _ = seeded

    def broken(vector: list[float], limit: int) -> list[object]:
        raise ConnectionError("neo4j is down")

    graph.search = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(ConnectionError):
        engine.similar("q", 3)
    assert sample(engine, "neo4j_search_errors_total") == 1


# Mode


def test_serve_refuses_an_unknown_mode(setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine = setup[0]
    with pytest.raises(TerminalError, match="unknown storage mode 'milvus_only'"):
        engine.serve("milvus_only", 5, "test")
    assert (engine.mode, engine.generation) == ("neo4j_only", 0)
    assert sample(engine, "engine_storage_mode", {"mode": "neo4j_only"}) == 1


def test_serve_updates_generation_and_gauges(setup: tuple[Engine, FakeGraph, FakeVectors, FakeClock]) -> None:
    engine, _, _, clock = setup
    clock.advance(3)
    assert engine.serve("shadow", 7, "control_record") is True
    assert (engine.mode, engine.generation, engine.mode_source) == ("shadow", 7, "control_record")
    assert sample(engine, "engine_mode_generation") == 7
    for mode in MODES:
        assert sample(engine, "engine_storage_mode", {"mode": mode}) == (1 if mode == "shadow" else 0)
    changes = sample(engine, "engine_mode_changes_total")
    assert engine.serve("shadow", 7, "control_record") is False
    assert sample(engine, "engine_mode_changes_total") == changes
    described = engine.describe()
    assert described["mode"] == "shadow"
    assert described["generation"] == 7
    assert described["read_source"] == "neo4j"
    assert described["writes_to_milvus"] is True
    assert described["mode_changed_at_epoch_ms"] == int(clock.now * 1000)
    assert engine.serve("neo4j_only", 8, "control_record") is True
    assert engine.describe()["writes_to_milvus"] is False
    assert sample(engine, "engine_storage_mode", {"mode": "shadow"}) == 0


def test_background_writes_reach_milvus_in_order_and_failures_go_to_repair() -> None:
    engine, _, vectors, _ = make_engine(milvus_writes="background")
    try:
        engine.serve("dual_write", 1, "test")
        engine.start_repairs()
        answer = engine.write("a", {"embedding": [1.0, 0.0, 0.0]})
        engine.write("a", {"embedding": [0.0, 1.0, 0.0]})
        assert answer["milvus"] == "queued"
        engine.flush_writes()
        assert vectors.rows["a"][0] == [0.0, 1.0, 0.0]
        assert sample(engine, "dual_write_success_total") == 2
        vectors.fail = True
        engine.write("b", {"embedding": [0.0, 0.0, 1.0]})
        engine.flush_writes()
        assert "b" not in vectors.rows
        assert sample(engine, "dual_write_milvus_errors_total") == 1
        assert len(engine.repair_queue) == 1
    finally:
        engine.close()


# Group commit


def test_group_commit_puts_concurrent_writes_in_one_transaction_and_closes() -> None:
    calls: list[list[tuple[str, list[float], int]]] = []
    group = GroupCommit(calls.append, window_seconds=0.3)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: group.write((f"id-{n}", [float(n)], n)), range(4)))
    group.close()
    assert len(calls) == 1 and sorted(row[0] for row in calls[0]) == ["id-0", "id-1", "id-2", "id-3"]


def test_group_commit_fails_every_writer_of_a_failed_transaction() -> None:
    def refuse(rows: list[tuple[str, list[float], int]]) -> None:
        raise RuntimeError("Neo4j is down")

    group = GroupCommit(refuse, window_seconds=0.05)
    try:
        with pytest.raises(RuntimeError, match="Neo4j is down"):
            group.write(("a", [1.0], 1))
    finally:
        group.close()


# Period gauges the cutover gates read


def metric(engine: Engine, name: str) -> float:
    value = engine.metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


def test_a_new_dual_write_period_and_shadow_phase_start_their_gauges_from_zero(setup) -> None:
    engine, _, vectors, clock = setup
    engine.serve("dual_write", 1, "test")
    vectors.fail = True
    engine.write("a", {"embedding": A})
    engine.flush_writes()
    assert metric(engine, "dual_write_period_milvus_errors") == 1
    engine.serve("neo4j_only", 2, "test")
    vectors.fail = False
    clock.advance(60)  # past the pause after a failed Milvus write
    engine.serve("dual_write", 3, "test")
    engine.write("b", {"embedding": B})
    engine.flush_writes()
    assert metric(engine, "dual_write_period_attempts") == 1
    assert metric(engine, "dual_write_period_milvus_errors") == 0
    assert metric(engine, "dual_write_milvus_errors_total") == 1
    engine.serve("shadow", 4, "test")
    engine.similar("a", 1)
    engine.wait_for_shadow()
    assert metric(engine, "shadow_period_comparisons") == 1
    engine.serve("hybrid", 5, "test")
    engine.serve("shadow", 6, "test")
    assert metric(engine, "shadow_period_comparisons") == 0
    assert metric(engine, "dual_write_period_attempts") == 1
