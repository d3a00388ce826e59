"""In-memory stand-ins for Neo4j and Milvus, shaped like the GraphStore / VectorStore protocols."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from reference_engine.engine import Engine, EngineSettings, RepairQueue
from reference_engine.metrics import EngineMetrics
from reference_engine.stores import Hit


def cosine(left: list[float], right: list[float]) -> float:
    dot = sum(a * b for a, b in zip(left, right, strict=True))
    norms = math.sqrt(sum(a * a for a in left)) * math.sqrt(sum(b * b for b in right))
    return dot / norms if norms else 0.0


def brute_force(rows: dict[str, list[float]], vector: list[float], limit: int) -> list[Hit]:
    hits = [Hit(item_id, cosine(vector, stored)) for item_id, stored in rows.items()]
    hits.sort(key=lambda hit: (-hit.score, hit.id))
    return hits[:limit]


class FakeGraph:
    """Neo4j: id -> (vector, updated_at), brute-force cosine search, a title per id."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[list[float], int]] = {}
        self.writes: list[tuple[str, list[float], int]] = []
        # Called once at the start of the next current() read, to interleave a concurrent write.
        self.before_current: Callable[[], None] | None = None

    def write(self, item_id: str, embedding: list[float], updated_at: int) -> None:
        self.items[item_id] = (list(embedding), updated_at)
        self.writes.append((item_id, list(embedding), updated_at))

    def write_many(self, rows: list[tuple[str, list[float], int]]) -> None:
        for row in rows:
            self.write(*row)

    def vector(self, item_id: str) -> list[float] | None:
        item = self.items.get(item_id)
        return list(item[0]) if item else None

    def current(self, ids: list[str]) -> list[tuple[str, list[float], int]]:
        hook, self.before_current = self.before_current, None
        rows = [
            (item_id, list(self.items[item_id][0]), self.items[item_id][1]) for item_id in ids if item_id in self.items
        ]
        if hook is not None:
            hook()
        return rows

    def search(self, vector: list[float], limit: int) -> list[Hit]:
        return brute_force({item_id: item[0] for item_id, item in self.items.items()}, vector, limit)

    def similar(self, item_id: str, limit: int, with_vector: bool) -> tuple[list[Hit], list[float] | None] | None:
        vector = self.vector(item_id)
        if vector is None:
            return None
        return self.search(vector, limit), (vector if with_vector else None)

    def hydrate(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {
            item_id: {"id": item_id, "title": f"Title of {item_id}", "kind": "movie", "release_year": 1999}
            for item_id in ids
            if item_id in self.items
        }


class FakeVectors:
    """Milvus: upserts and searches its own rows; ``fail = True`` makes every call raise."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[list[float], int]] = {}
        self.fail = False
        self.upsert_calls = 0
        self.search_calls = 0

    def upsert(self, rows: list[tuple[str, list[float], int]]) -> None:
        self.upsert_calls += 1
        if self.fail:
            raise ConnectionError("milvus is down")
        for item_id, vector, stamp in rows:
            self.rows[item_id] = (list(vector), stamp)

    def search(self, vector: list[float], limit: int) -> list[Hit]:
        self.search_calls += 1
        if self.fail:
            raise ConnectionError("milvus is down")
        return brute_force({item_id: row[0] for item_id, row in self.rows.items()}, vector, limit)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_engine(
    dimension: int = 3,
    retry_after: float = 5.0,
    repair_queue: RepairQueue | None = None,
    clock: FakeClock | None = None,
    milvus_writes: str = "inline",
) -> tuple[Engine, FakeGraph, FakeVectors, FakeClock]:
    """An engine on fakes; the caller closes it."""
    graph, vectors, clock = FakeGraph(), FakeVectors(), clock or FakeClock()
    settings = EngineSettings(
        instance_id="engine-test",
        dimension=dimension,
        milvus_retry_after_seconds=retry_after,
        shadow_workers=2,
        milvus_writes=milvus_writes,
    )
    engine = Engine(settings, graph, vectors, EngineMetrics("engine-test"), repair_queue, clock=clock)
    return engine, graph, vectors, clock


def sample(engine: Engine, name: str, labels: dict[str, str] | None = None) -> float:
    """A metric sample of the engine's registry; a misspelt name fails instead of reading as zero."""
    value = engine.metrics.registry.get_sample_value(name, labels or {})
    assert value is not None, f"no sample {name} {labels or {}}"
    return value
