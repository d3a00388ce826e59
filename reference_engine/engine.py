"""What the engine does with a write or a search in each storage mode.

- ``neo4j_only``: Neo4j only.
- ``dual_write``: a write is acknowledged once Neo4j has it; the Milvus write follows and its
  failure never fails the request: it is counted and the id queued for repair.
- ``shadow``: answers come from Neo4j; Milvus answers the same query off the request path and
  the two top-k lists are compared.
- ``hybrid``: searches run in Milvus and are hydrated from Neo4j; writes still reach Neo4j first,
  so a rollback loses nothing. If Milvus fails, Neo4j answers. The query vector is read from
  Neo4j, the source of truth: a point lookup there costs less than one in Milvus, which does the
  search.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hybrid_migration.engine_control import READ_SOURCE, WRITES_TO_MILVUS, check_mode_name
from hybrid_migration.run_state import write_atomically

from .metrics import EngineMetrics
from .stores import Hit

log = logging.getLogger("reference_engine")


class BadRequest(Exception):
    """The client sent something the engine will not store; the message says why."""


class NotFound(Exception):
    """The media item does not exist or has no embedding."""


class GraphStore(Protocol):
    def write(self, item_id: str, embedding: list[float], updated_at: int) -> None: ...
    def write_many(self, rows: list[tuple[str, list[float], int]]) -> None: ...
    def similar(self, item_id: str, limit: int, with_vector: bool) -> tuple[list[Hit], list[float] | None] | None: ...
    def vector(self, item_id: str) -> list[float] | None: ...
    def current(self, ids: list[str]) -> list[tuple[str, list[float], int]]: ...
    def search(self, vector: list[float], limit: int) -> list[Hit]: ...
    def hydrate(self, ids: list[str]) -> dict[str, dict[str, Any]]: ...


class VectorStore(Protocol):
    def upsert(self, rows: list[tuple[str, list[float], int]]) -> None: ...
    def search(self, vector: list[float], limit: int) -> list[Hit]: ...


def top_k_overlap(primary: list[str], shadow: list[str]) -> float:
    """Share of the primary's ids the shadow also returned (1.0 when the primary returned none)."""
    if not primary:
        return 1.0
    return len(set(primary) & set(shadow)) / len(primary)


def parse_embedding(value: Any, dimension: int) -> list[float]:
    """Return the embedding as floats, or say precisely what is wrong with it.

    Raises:
        BadRequest: not a list of finite numbers of the expected dimension.
    """
    if not isinstance(value, list):
        raise BadRequest("embedding must be a JSON list of numbers")
    if len(value) != dimension:
        raise BadRequest(f"embedding has dimension {len(value)}, expected {dimension}")
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        raise BadRequest("embedding must contain only numbers")
    try:
        floats = [float(x) for x in value]
    except OverflowError as error:  # JSON integers have no size limit; a float does
        raise BadRequest("embedding contains a number too large for a float") from error
    if not all(math.isfinite(x) for x in floats):
        raise BadRequest("embedding contains NaN or Infinity")
    return floats


class GroupCommit:
    """Writes that arrive together go to Neo4j in one transaction; each caller waits for that commit.

    Every commit makes Neo4j refresh its vector index, and a search after a refresh pays for the new
    small segment; batching concurrent writes keeps commits (and refreshes) to a few per window
    instead of one per request. A write is still acknowledged only after its commit.
    """

    def __init__(
        self,
        write_many: Callable[[list[tuple[str, list[float], int]]], None],
        window_seconds: float,
        max_rows: int = 200,
    ) -> None:
        self._write_many = write_many
        self._window = window_seconds
        self._max_rows = max_rows
        self._pending: queue.Queue[tuple[tuple[str, list[float], int], Future[None]]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def write(self, row: tuple[str, list[float], int], timeout: float = 30.0) -> None:
        done: Future[None] = Future()
        self._pending.put((row, done))
        done.result(timeout=timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self._pending.get(timeout=0.2)]
            except queue.Empty:
                continue
            deadline = time.monotonic() + self._window
            while len(batch) < self._max_rows:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._pending.get(timeout=remaining))
                except queue.Empty:
                    break
            try:
                self._write_many([row for row, _ in batch])
            except Exception as error:
                for _, done in batch:
                    done.set_exception(error)
                continue
            for _, done in batch:
                done.set_result(None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class RepairQueue:
    """Ids whose Milvus write failed, deduplicated, optionally journalled to a file (one JSON string a line).

    Only ids are kept: a repair re-reads Neo4j's current value, so a later write to the same id
    can never be overwritten by an older queued one.
    """

    def __init__(self, journal: Path | None = None) -> None:
        self._ids: dict[str, None] = {}
        self._lock = threading.Lock()
        self._journal = journal
        if journal is not None and journal.exists():
            for line in journal.read_text(encoding="utf-8").splitlines():
                if line:
                    self._ids[json.loads(line)] = None

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, item_id: str) -> None:
        with self._lock:
            if item_id in self._ids:
                return
            self._ids[item_id] = None
            if self._journal is not None:
                with self._journal.open("a", encoding="utf-8") as journal:
                    journal.write(json.dumps(item_id) + "\n")

    def take(self, limit: int) -> list[str]:
        with self._lock:
            return list(self._ids)[:limit]

    def done(self, ids: list[str]) -> None:
        with self._lock:
            for item_id in ids:
                self._ids.pop(item_id, None)
            if self._journal is not None:
                text = "".join(json.dumps(item_id) + "\n" for item_id in self._ids)
                write_atomically(self._journal, text)


@dataclass
class EngineSettings:
    """Tunables of one engine instance."""

    instance_id: str
    dimension: int
    milvus_retry_after_seconds: float = 1.0
    repair_batch: int = 500
    repair_interval_seconds: float = 0.5
    shadow_workers: int = 4
    # "background": one writer thread per instance sends Milvus writes in batches, in order, off the
    # request path, so a slow Milvus never slows a request; "inline": inside the request.
    milvus_writes: str = "background"
    milvus_write_batch: int = 256
    milvus_write_queue: int = 10_000
    # Seconds a Neo4j write waits for others to share its transaction; 0 commits each write alone.
    neo4j_group_commit_seconds: float = 0.0


class Engine:
    """Serves writes and searches in the current storage mode; thread-safe."""

    def __init__(
        self,
        settings: EngineSettings,
        graph: GraphStore,
        vectors: VectorStore,
        metrics: EngineMetrics,
        repair_queue: RepairQueue | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.graph = graph
        self.vectors = vectors
        self.metrics = metrics
        # Not ``or``: an empty queue is falsy, and a journal still empty at start must be kept.
        self.repair_queue = repair_queue if repair_queue is not None else RepairQueue()
        self.clock = clock
        self.mode = "neo4j_only"
        self.generation = 0
        self.mode_source = "startup"
        self.config_digest = ""
        self.mode_changed_at = clock()
        self._milvus_down_until = 0.0
        self._stop = threading.Event()
        self._shadow = ThreadPoolExecutor(settings.shadow_workers, thread_name_prefix="shadow")
        self._repairer: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._group_commit = (
            GroupCommit(graph.write_many, settings.neo4j_group_commit_seconds)
            if settings.neo4j_group_commit_seconds > 0
            else None
        )
        self._pending_writes: queue.Queue[tuple[str, list[float], int]] = queue.Queue(settings.milvus_write_queue)
        self._pending_comparisons = 0
        self._pending_lock = threading.Lock()
        metrics.serve_mode(self.mode, self.generation)
        metrics.repair_queue_size.set(len(self.repair_queue))

    # Mode

    def serve(self, mode: str, generation: int, source: str) -> bool:
        """Switch to ``mode`` (generation ``generation``); return whether anything changed."""
        check_mode_name(mode)
        if mode == self.mode and generation == self.generation:
            return False
        previous = self.mode
        if mode in WRITES_TO_MILVUS and previous not in WRITES_TO_MILVUS:
            self.metrics.start_dual_write_period()
        if mode == "shadow" and previous != "shadow":
            self.metrics.start_shadow_period()
        self.mode, self.generation, self.mode_source = mode, generation, source
        self.mode_changed_at = self.clock()
        self.metrics.serve_mode(mode, generation)
        log.info("instance %s serves %s (generation %d, was %s)", self.settings.instance_id, mode, generation, previous)
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "instance": self.settings.instance_id,
            "mode": self.mode,
            "generation": self.generation,
            "source": self.mode_source,
            "read_source": READ_SOURCE[self.mode],
            "writes_to_milvus": self.mode in WRITES_TO_MILVUS,
            "mode_changed_at_epoch_ms": int(self.mode_changed_at * 1000),
            "repair_queue": len(self.repair_queue),
            "config_digest": self.config_digest,
        }

    # Writes

    def write(self, item_id: str, body: Any) -> dict[str, Any]:
        """Store an embedding; acknowledged once Neo4j has it.

        Raises:
            BadRequest: the id or the embedding is not acceptable.
        """
        if not item_id or len(item_id) > 512:
            raise BadRequest("id must be 1 to 512 characters")
        if not isinstance(body, dict):
            raise BadRequest('body must be a JSON object {"embedding": [...]}')
        embedding = parse_embedding(body.get("embedding"), self.settings.dimension)
        mode = self.mode
        updated_at = int(self.clock() * 1000)
        if self._group_commit is not None:
            self._group_commit.write((item_id, embedding, updated_at))
        else:
            self.graph.write(item_id, embedding, updated_at)
        milvus = "not_written"
        if mode in WRITES_TO_MILVUS:
            milvus = self._shadow_write(item_id, embedding, updated_at)
        return {"id": item_id, "updated_at": updated_at, "mode": mode, "milvus": milvus}

    def _shadow_write(self, item_id: str, embedding: list[float], updated_at: int) -> str:
        self.metrics.dual_write_attempts.inc()
        self.metrics.period_dual_write_attempts.inc()
        if self.clock() < self._milvus_down_until:
            self._queue_repair(item_id)
            return "queued_for_repair"
        if self.settings.milvus_writes == "background":
            try:
                self._pending_writes.put_nowait((item_id, embedding, updated_at))
            except queue.Full:
                self._queue_repair(item_id)
                return "queued_for_repair"
            return "queued"
        return "written" if self._write_to_milvus([(item_id, embedding, updated_at)]) else "queued_for_repair"

    def _write_to_milvus(self, rows: list[tuple[str, list[float], int]]) -> bool:
        try:
            self.vectors.upsert(rows)
        except Exception as error:
            log.warning("Milvus write of %d row(s) failed, queued for repair: %s", len(rows), error)
            self._milvus_down_until = self.clock() + self.settings.milvus_retry_after_seconds
            for item_id, _, _ in rows:
                self._queue_repair(item_id)
            return False
        self.metrics.dual_write_success.inc(len(rows))
        return True

    def _writer_loop(self) -> None:
        """Send queued Milvus writes in arrival order, in batches of what has piled up."""
        while not self._stop.is_set() or not self._pending_writes.empty():
            try:
                rows = [self._pending_writes.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(rows) < self.settings.milvus_write_batch:
                try:
                    rows.append(self._pending_writes.get_nowait())
                except queue.Empty:
                    break
            if self.clock() < self._milvus_down_until:
                for item_id, _, _ in rows:
                    self._queue_repair(item_id)
            else:
                self._write_to_milvus(rows)
            for _ in rows:
                self._pending_writes.task_done()

    def flush_writes(self) -> None:
        """Wait until every queued Milvus write was sent or handed to repair."""
        if self._writer is not None:
            self._pending_writes.join()

    def _queue_repair(self, item_id: str) -> None:
        self.metrics.dual_write_milvus_errors.inc()
        self.metrics.period_dual_write_milvus_errors.inc()
        self.repair_queue.add(item_id)
        self.metrics.repair_queue_size.set(len(self.repair_queue))

    def drain_repairs(self) -> int:
        """Re-write queued ids to Milvus from Neo4j's current values; return how many were written.

        Raises whatever Milvus or Neo4j raise; the queue keeps the ids then.
        """
        ids = self.repair_queue.take(self.settings.repair_batch)
        if not ids:
            return 0
        rows = self.graph.current(ids)
        if rows:
            self.vectors.upsert(rows)
        self.repair_queue.done(ids)
        # A write that reached Neo4j after the read above may have had its own Milvus upsert
        # overwritten by ours, or have failed while its id was still queued (add() was a no-op and
        # done() just removed it). Read again and queue every id whose value moved on.
        written = {item_id: (embedding, updated_at) for item_id, embedding, updated_at in rows}
        try:
            now = self.graph.current(ids)
        except Exception:
            for item_id in ids:
                self.repair_queue.add(item_id)
            raise
        for item_id, embedding, updated_at in now:
            if written.get(item_id) != (embedding, updated_at):
                self.repair_queue.add(item_id)
        self.metrics.repaired.inc(len(rows))
        self.metrics.repair_queue_size.set(len(self.repair_queue))
        self._milvus_down_until = 0.0
        return len(rows)

    def start_repairs(self) -> None:
        if self.settings.milvus_writes == "background":
            self._writer = threading.Thread(target=self._writer_loop, name="milvus-writer", daemon=True)
            self._writer.start()
        self._repairer = threading.Thread(target=self._repair_loop, name="repair", daemon=True)
        self._repairer.start()

    def _repair_loop(self) -> None:
        while not self._stop.wait(self.settings.repair_interval_seconds):
            try:
                while self.drain_repairs():
                    pass
            except Exception as error:
                log.info("repair waits for Milvus (%d queued): %s", len(self.repair_queue), error)

    # Searches

    def similar(self, item_id: str, k: int) -> dict[str, Any]:
        """The ``k`` nearest media items to ``item_id``, from the mode's read source.

        Raises:
            BadRequest: ``k`` out of range.
            NotFound: no such item or no embedding.
        """
        if not 1 <= k <= 100:
            raise BadRequest("k must be between 1 and 100")
        mode = self.mode
        served_by = "neo4j"
        hits: list[Hit] | None = None
        neo4j_ms = 0.0
        if mode == "hybrid":
            vector = self.graph.vector(item_id)
            if vector is None:
                raise NotFound(f"no media item {item_id!r} with an embedding")
            hits = self._milvus_search(vector, k + 1)
            if hits is None:
                self.metrics.hybrid_fallbacks.inc()
                hits = self._neo4j_search(vector, k + 1)
            else:
                served_by = "milvus"
        else:
            started = time.perf_counter()
            try:
                found = self.graph.similar(item_id, k + 1, mode == "shadow")
            except Exception:
                self.metrics.neo4j_search_errors.inc()
                raise
            if found is None:
                raise NotFound(f"no media item {item_id!r} with an embedding")
            neo4j_ms = (time.perf_counter() - started) * 1000
            self.metrics.neo4j_search_latency.observe(neo4j_ms)
            hits, vector = found
        results = [hit for hit in hits if hit.id != item_id][:k]
        if mode == "shadow" and vector is not None:
            with self._pending_lock:
                self._pending_comparisons += 1
            self._shadow.submit(self._compare, vector, k, item_id, [hit.id for hit in results], neo4j_ms)
        details = self.graph.hydrate([hit.id for hit in results]) if served_by == "milvus" else {}
        return {
            "id": item_id,
            "mode": mode,
            "served_by": served_by,
            "instance": self.settings.instance_id,
            "results": [{"id": hit.id, "score": hit.score, **details.get(hit.id, {})} for hit in results],
        }

    def _neo4j_search(self, vector: list[float], limit: int) -> list[Hit]:
        started = time.perf_counter()
        try:
            hits = self.graph.search(vector, limit)
        except Exception:
            self.metrics.neo4j_search_errors.inc()
            raise
        self.metrics.neo4j_search_latency.observe((time.perf_counter() - started) * 1000)
        return hits

    def _milvus_search(self, vector: list[float], limit: int) -> list[Hit] | None:
        started = time.perf_counter()
        try:
            hits = self.vectors.search(vector, limit)
        except Exception as error:
            self.metrics.milvus_search_errors.inc()
            log.warning("Milvus search failed: %s", error)
            return None
        self.metrics.milvus_search_latency.observe((time.perf_counter() - started) * 1000)
        return hits

    def _compare(self, vector: list[float], k: int, item_id: str, primary: list[str], neo4j_ms: float) -> None:
        try:
            self._compare_now(vector, k, item_id, primary, neo4j_ms)
        finally:
            with self._pending_lock:
                self._pending_comparisons -= 1

    def _compare_now(self, vector: list[float], k: int, item_id: str, primary: list[str], neo4j_ms: float) -> None:
        started = time.perf_counter()
        hits = self._milvus_search(vector, k + 1)
        if hits is None:
            return
        milvus_ms = (time.perf_counter() - started) * 1000
        shadow = [hit.id for hit in hits if hit.id != item_id][:k]
        overlap = top_k_overlap(primary, shadow)
        self.metrics.shadow_comparisons.inc()
        self.metrics.shadow_overlap.observe(overlap)
        self.metrics.period_shadow_comparisons.inc()
        self.metrics.period_shadow_overlap_sum.inc(overlap)
        self.metrics.shadow_latency_delta.observe(milvus_ms - neo4j_ms)

    def wait_for_shadow(self, timeout: float = 10.0) -> None:
        """Wait until queued comparisons have finished (tests use it)."""
        deadline = time.monotonic() + timeout
        while self._pending_comparisons and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        if self._group_commit is not None:
            self._group_commit.close()
        self._shadow.shutdown(wait=True, cancel_futures=True)
        if self._writer is not None:
            self._writer.join(timeout=10)
        if self._repairer is not None:
            self._repairer.join(timeout=5)
