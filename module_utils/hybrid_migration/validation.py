"""Validation of Milvus against Neo4j, and repair: does the target hold exactly the valid source rows?

Two modes. A sample draws ``sample_size`` string ids uniformly from the whole
label (Neo4j orders them by a random key) and compares those rows. A full scan
merges both sides' id-ordered streams, page by page, so memory stays bounded
whatever the size; ids one side has and the other's stream did not show are
confirmed by point lookups before they are reported, so a difference in how the
two servers order exotic strings can never produce a false finding.

The source rows are the rows the copy would accept (transform.normalize): rows
it rejects are reported by reason, not counted as failures, and a Milvus row for
one of them is an orphan. Repair re-upserts from Neo4j and deletes orphans as
findings accumulate, then re-reads exactly those ids to confirm.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from .neo4j_source import Page, Row
from .retry import RetryPolicy, with_retries
from .transform import Batch, Reject, check_id, normalize

T = TypeVar("T")

MISSING, MISMATCH, ORPHAN, DIMENSION = "missing_in_milvus", "vector_mismatch", "orphan_in_milvus", "dimension_mismatch"
CATEGORIES = (MISSING, MISMATCH, ORPHAN, DIMENSION)


class Source(Protocol):
    """What validation reads from Neo4j (neo4j_source.EmbeddingReader plus NodeLookup)."""

    def string_id_page(self, last: str, seen_at_last: int, limit: int) -> Page: ...
    def other_id_pages(self, limit: int) -> Iterator[Page]: ...
    def existing_string_ids(self, ids: list[str]) -> set[str]: ...
    def rows_for_ids(self, ids: list[str]) -> list[Row]: ...
    def sample_string_ids(self, size: int) -> list[str]: ...


class Target(Protocol):
    """What validation reads from and deletes in Milvus (milvus_reader.MilvusRows)."""

    def page(self, after: str | None, page_size: int) -> tuple[list[str], np.ndarray]: ...
    def vectors(self, ids: list[str], chunk: int = 1000) -> dict[str, np.ndarray]: ...
    def count(self) -> int: ...
    def delete(self, ids: list[str], chunk: int = 1000) -> int: ...


class Writer(Protocol):
    """Upserts into Milvus (milvus_writer.MilvusWriter)."""

    def upsert(self, ids: list[str], vectors: np.ndarray, updated_at: np.ndarray) -> int: ...


@dataclass(frozen=True)
class ValidateOptions:
    """How to validate; see the embeddings_validate module for each option."""

    dimension: int
    id_max_length: int = 512
    full_scan: bool = False
    sample_size: int = 1000
    min_success_rate: float = 0.99
    tolerance: float = 1e-5
    fix: bool = False
    max_report_samples: int = 10
    source_page_size: int = 1000
    target_page_size: int = 5000
    confirm_batch: int = 1000
    repair_batch: int = 1000
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    check_mode: bool = False


@dataclass
class Tally:
    """A count and the first few ids of one kind of finding."""

    count: int = 0
    samples: list[str] = field(default_factory=list)

    def add(self, item_id: str, limit: int) -> None:
        self.count += 1
        if len(self.samples) < limit:
            self.samples.append(item_id)


@dataclass
class FixResult:
    """What repair did (or in check mode would do)."""

    applied: bool = False
    upserted: int = 0
    deleted: int = 0
    verified: int = 0
    remaining: int = 0
    remaining_samples: list[str] = field(default_factory=list)
    success_rate_after: float = 0.0


@dataclass
class ValidationResult:
    """Counts per category, the success rate and, with repair, what was fixed."""

    mode: str = "sample"
    source_rows: int = 0
    checked: int = 0
    matching: int = 0
    success_rate: float = 0.0
    min_success_rate: float = 0.99
    passed: bool = False
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_rejected: int = 0
    source_rejected_by_kind: dict[str, int] = field(default_factory=dict)
    milvus_rows: int = 0
    max_distance: float = 0.0
    tolerance: float = 1e-5
    fix: dict[str, Any] | None = None
    seconds: float = 0.0
    items_per_second: float = 0.0
    changed: bool = False
    message: str = ""


def distances(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Row-wise L2 distance between two float32 matrices of one shape."""
    if source.shape != target.shape:
        raise ValueError(f"shapes differ: {source.shape} and {target.shape}")
    difference = source.astype(np.float64) - target.astype(np.float64)
    return np.sqrt(np.einsum("ij,ij->i", difference, difference))


def success_rate(matching: int, source_rows: int) -> float:
    """Matching over source rows; an empty source is trivially in step."""
    return matching / source_rows if source_rows else 1.0


def gate_message(rate: float, minimum: float, findings: dict[str, int]) -> str:
    """Why the gate failed, with the distance to it."""
    what = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in findings.items() if count)
    return (
        f"validation failed: success rate {rate:.4%} is {(minimum - rate) * 100:.4f} points below "
        f"min_success_rate {minimum:.4%} ({what or 'no findings'})"
    )


class Prefetch:
    """Runs an iterator in a thread, one item ahead, so both servers are read at once."""

    _END = object()

    def __init__(self, items: Iterator[Any], depth: int = 1) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._items = items
        self._thread = threading.Thread(target=self._run, name="validate-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            self._put(error)
            return
        self._put(self._END)

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class Validation:
    """One validation run; ``run()`` returns the result or raises ``MigrationError``."""

    def __init__(
        self,
        source: Source,
        target: Target,
        writer: Writer,
        options: ValidateOptions,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.writer = writer
        self.options = options
        self.log = log or (lambda _message: None)
        self.tallies = {name: Tally() for name in CATEGORIES}
        self.rejected: Counter[str] = Counter()
        self.source_rows = 0
        self.matching = 0
        self.max_distance = 0.0
        self.fix = FixResult()
        self._pairs: list[tuple[str, np.ndarray, np.ndarray, int]] = []
        self._pending_source: dict[str, tuple[np.ndarray, int]] = {}
        self._pending_target: list[str] = []
        self._to_upsert: dict[str, tuple[np.ndarray, int]] = {}
        self._to_delete: list[str] = []
        self.milvus_rows = 0
        self.repaired_source_rows = 0

    def _retry(self, operation: Callable[[], T]) -> T:
        return with_retries(
            operation, self.options.retry, on_retry=lambda n, error, delay: self.log(f"retry {n}: {error}")
        )

    def run(self) -> ValidationResult:
        started = time.monotonic()
        options = self.options
        if options.full_scan:
            self._full_scan()
        else:
            self._sample()
        self._apply_repairs()
        result = self._result()
        result.seconds = round(time.monotonic() - started, 3)
        result.items_per_second = round(result.checked / result.seconds, 1) if result.seconds else 0.0
        return result

    # Findings

    def _note_rejects(self, rejects: list[Reject]) -> None:
        for reject in rejects:
            self.rejected[reject.kind] += 1
            if reject.kind == "wrong_dimension":
                self.tallies[DIMENSION].add(reject.id, self.options.max_report_samples)

    def _finding(self, category: str, item_id: str) -> None:
        self.tallies[category].add(item_id, self.options.max_report_samples)

    def _compare_pairs(self) -> None:
        """Compare the matched (id, source vector, target vector) pairs collected so far, in one numpy pass."""
        if not self._pairs:
            return
        pairs, self._pairs = self._pairs, []
        measured = distances(np.stack([pair[1] for pair in pairs]), np.stack([pair[2] for pair in pairs]))
        self.max_distance = max(self.max_distance, float(measured.max()))
        for (item_id, vector, _, stamp), distance in zip(pairs, measured, strict=True):
            if distance < self.options.tolerance:
                self.matching += 1
            else:
                self._finding(MISMATCH, item_id)
                self._to_upsert[item_id] = (vector, stamp)
        self._repair_if_due()

    def _pair(self, item_id: str, source: np.ndarray, target: np.ndarray, stamp: int) -> None:
        self._pairs.append((item_id, source, target, stamp))
        if len(self._pairs) >= 2048:
            self._compare_pairs()

    def _confirm_source_only(self) -> None:
        """Ids the source has and the merge did not see in Milvus: look them up before calling them missing."""
        if not self._pending_source:
            return
        pending, self._pending_source = self._pending_source, {}
        stored = self._retry(lambda: self.target.vectors(list(pending)))
        for item_id, (vector, stamp) in pending.items():
            if item_id in stored:
                self._pair(item_id, vector, stored[item_id], stamp)
            else:
                self._finding(MISSING, item_id)
                self._to_upsert[item_id] = (vector, stamp)
        self._compare_pairs()

    def _confirm_target_only(self) -> None:
        """Ids Milvus has and the merge did not see in the source: orphans unless Neo4j has them valid."""
        if not self._pending_target:
            return
        pending, self._pending_target = self._pending_target, []
        rows = self._retry(lambda: self.source.rows_for_ids(pending))
        texts = [(check_id(row[0], self.options.id_max_length)[0], row) for row in rows]
        batch = normalize(
            [(text, row[1], row[2]) for text, row in texts if text is not None],
            self.options.dimension,
            self.options.id_max_length,
        )
        valid = set(batch.ids)
        for item_id in pending:
            if item_id not in valid:
                self._finding(ORPHAN, item_id)
                self._to_delete.append(item_id)
        self._repair_if_due()

    # Repair

    def _repair_if_due(self, force: bool = False) -> None:
        due = len(self._to_upsert) + len(self._to_delete)
        if due and (force or due >= self.options.repair_batch):
            self._apply_repairs()

    def _apply_repairs(self) -> None:
        if not self.options.fix:
            self._to_upsert.clear()
            self._to_delete.clear()
            return
        upserts, self._to_upsert = self._to_upsert, {}
        deletes, self._to_delete = self._to_delete, []
        if not upserts and not deletes:
            return
        self.fix.applied = not self.options.check_mode
        if self.options.check_mode:
            self.fix.upserted += len(upserts)
            self.fix.deleted += len(deletes)
            return
        ids = list(upserts)
        if ids:
            matrix = np.stack([upserts[i][0] for i in ids])
            stamps = np.asarray([upserts[i][1] for i in ids], dtype=np.int64)
            self.fix.upserted += self._retry(lambda: self.writer.upsert(ids, matrix, stamps))
        if deletes:
            self.fix.deleted += self._retry(lambda: self.target.delete(deletes))
        self._verify(upserts, deletes)

    def _verify(self, upserts: dict[str, tuple[np.ndarray, int]], deletes: list[str]) -> None:
        """Re-read exactly the repaired ids: upserted ones equal to the source, deleted ones gone."""
        stored = self._retry(lambda: self.target.vectors([*upserts, *deletes]))
        for item_id, (vector, _) in upserts.items():
            ok = item_id in stored and float(distances(vector[None, :], stored[item_id][None, :])[0]) < (
                self.options.tolerance
            )
            self._verified(item_id, ok)
            self.repaired_source_rows += ok
        for item_id in deletes:
            self._verified(item_id, item_id not in stored)

    def _verified(self, item_id: str, ok: bool) -> None:
        if ok:
            self.fix.verified += 1
            return
        self.fix.remaining += 1
        if len(self.fix.remaining_samples) < self.options.max_report_samples:
            self.fix.remaining_samples.append(item_id)

    # Modes

    def _source_batches(self) -> Iterator[Batch]:
        """Normalized pages of string-id rows in id order (the copy's reader and rules)."""
        last, seen_at_last, previous = "", 0, None
        while True:
            page = self._retry(
                lambda last=last, seen=seen_at_last: self.source.string_id_page(
                    last, seen, self.options.source_page_size
                )
            )
            if not page.rows:
                return
            seen = {previous} if previous is not None else set()
            batch = normalize(page.rows, self.options.dimension, self.options.id_max_length, seen_ids=seen)
            if batch.ids:
                previous = batch.ids[-1]
            yield batch
            last, seen_at_last = page.last_key, page.seen_at_last_key

    def _target_pages(self) -> Iterator[tuple[list[str], np.ndarray]]:
        after: str | None = None
        while True:
            ids, vectors = self._retry(lambda after=after: self.target.page(after, self.options.target_page_size))
            if not ids:
                return
            yield ids, vectors
            after = ids[-1]

    def _full_scan(self) -> None:
        options = self.options
        sources = Prefetch(self._source_batches())
        targets = Prefetch(self._target_pages())
        try:
            source_items = self._flatten_source(iter(sources))
            target_items = self._flatten_target(iter(targets))
            source_item = next(source_items, None)
            target_item = next(target_items, None)
            while source_item is not None or target_item is not None:
                if target_item is None or (source_item is not None and source_item[0] < target_item[0]):
                    assert source_item is not None
                    self._pending_source[source_item[0]] = (source_item[1], source_item[2])
                    source_item = next(source_items, None)
                elif source_item is None or target_item[0] < source_item[0]:
                    self._pending_target.append(target_item[0])
                    target_item = next(target_items, None)
                else:
                    self._pair(source_item[0], source_item[1], target_item[1], source_item[2])
                    source_item = next(source_items, None)
                    target_item = next(target_items, None)
                if len(self._pending_source) >= options.confirm_batch:
                    self._confirm_source_only()
                if len(self._pending_target) >= options.confirm_batch:
                    self._confirm_target_only()
        finally:
            sources.close()
            targets.close()
        self._compare_pairs()
        self._confirm_source_only()
        self._other_ids()
        self._confirm_target_only()
        self._compare_pairs()

    def _flatten_source(self, batches: Iterator[Batch]) -> Iterator[tuple[str, np.ndarray, int]]:
        for batch in batches:
            self._note_rejects(batch.rejects)
            self.source_rows += len(batch)
            stamps = batch.updated_at.tolist()
            for index, item_id in enumerate(batch.ids):
                yield item_id, batch.vectors[index], stamps[index]

    def _flatten_target(self, pages: Iterator[tuple[list[str], np.ndarray]]) -> Iterator[tuple[str, np.ndarray]]:
        for ids, vectors in pages:
            self.milvus_rows += len(ids)
            for index, item_id in enumerate(ids):
                yield item_id, vectors[index]

    def _other_ids(self) -> None:
        """Nodes whose id is missing or not a string, by the copy's rules (an integer id is stored as its text,
        unless another node has that text as its string id)."""
        options = self.options
        for page in self._retry(lambda: list(self.source.other_id_pages(options.source_page_size))):
            texts = [check_id(row[0], options.id_max_length)[0] for row in page.rows]
            taken = self._retry(lambda texts=texts: self.source.existing_string_ids([t for t in texts if t]))
            rows = []
            for row, text in zip(page.rows, texts, strict=True):
                if text is not None and text in taken:
                    self.rejected["duplicate_id"] += 1
                    continue
                rows.append((row[0] if text is None else text, row[1], row[2]))
            batch = normalize(rows, options.dimension, options.id_max_length)
            self._note_rejects(batch.rejects)
            self.source_rows += len(batch)
            stamps = batch.updated_at.tolist()
            for index, item_id in enumerate(batch.ids):
                self._pending_source[item_id] = (batch.vectors[index], stamps[index])
        self._confirm_source_only()

    def _sample(self) -> None:
        options = self.options
        ids = self._retry(lambda: self.source.sample_string_ids(options.sample_size))
        for start in range(0, len(ids), options.confirm_batch):
            part = ids[start : start + options.confirm_batch]
            rows = self._retry(lambda part=part: self.source.rows_for_ids(part))
            batch = normalize(
                [row for row in rows if isinstance(row[0], str)], options.dimension, options.id_max_length
            )
            self._note_rejects(batch.rejects)
            self.source_rows += len(batch)
            stamps = batch.updated_at.tolist()
            for index, item_id in enumerate(batch.ids):
                self._pending_source[item_id] = (batch.vectors[index], stamps[index])
            self._confirm_source_only()
        self.milvus_rows = self._retry(self.target.count)

    def _result(self) -> ValidationResult:
        options = self.options
        rate = success_rate(self.matching, self.source_rows)
        result = ValidationResult(
            mode="full_scan" if options.full_scan else "sample",
            source_rows=self.source_rows,
            checked=self.source_rows,
            matching=self.matching,
            success_rate=round(rate, 6),
            min_success_rate=options.min_success_rate,
            categories={name: {"count": t.count, "samples": t.samples} for name, t in self.tallies.items()},
            source_rejected=sum(self.rejected.values()),
            source_rejected_by_kind=dict(sorted(self.rejected.items())),
            milvus_rows=self.milvus_rows,
            max_distance=self.max_distance,
            tolerance=options.tolerance,
        )
        if not options.full_scan:
            result.categories[ORPHAN]["checked"] = False
        gate_rate = rate
        if options.fix:
            if not options.check_mode:
                gate_rate = success_rate(self.matching + self.repaired_source_rows, self.source_rows)
            self.fix.success_rate_after = round(gate_rate, 6)
            result.fix = {**self.fix.__dict__, "would_fix_only": options.check_mode}
        result.passed = gate_rate >= options.min_success_rate
        result.changed = bool(self.fix.upserted or self.fix.deleted)
        findings = {name: t.count for name, t in self.tallies.items() if name != DIMENSION}
        if result.passed:
            result.message = (
                f"{result.mode.replace('_', ' ')}: {self.matching} of {self.source_rows} source rows match "
                f"({rate:.4%}); " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in findings.items())
            )
        else:
            result.message = gate_message(gate_rate, options.min_success_rate, findings)
        if options.fix and (self.fix.upserted or self.fix.deleted):
            verb = "would repair" if options.check_mode else "repaired"
            result.message += (
                f"; {verb}: {self.fix.upserted} upserted, {self.fix.deleted} deleted"
                + ("" if options.check_mode else f", {self.fix.verified} verified, {self.fix.remaining} still differ")
                + ("" if options.check_mode else f"; success rate after repair {gate_rate:.4%}")
            )
        return result
