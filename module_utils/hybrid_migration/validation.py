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

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from .neo4j_source import Page, Row
from .prefetch import Prefetch
from .retry import RetryPolicy, with_retries
from .source_process import string_id_batches
from .transform import Batch, Reject, check_id, normalize, normalize_other_ids

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
    target_page_size: int = 1000
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
    """Row-wise L2 distance between two float32 matrices of one shape.

    In float32: the difference of two close float32 values is exact, and the sum of squares is far
    more precise than the 1e-5 tolerance needs.
    """
    if source.shape != target.shape:
        raise ValueError(f"shapes differ: {source.shape} and {target.shape}")
    difference = np.subtract(source, target, dtype=np.float32)
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


class Validation:
    """One validation run; ``run()`` returns the result or raises ``MigrationError``."""

    def __init__(
        self,
        source: Source,
        target: Target,
        writer: Writer,
        options: ValidateOptions,
        log: Callable[[str], None] | None = None,
        source_batches: Callable[[], Iterable[Batch]] | None = None,
    ) -> None:
        self.source_batches = source_batches
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
        self._unequal: list[str] = []
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
        self._recheck_unequal()
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
        """Compare the pairs that point lookups matched, in one numpy pass."""
        if not self._pairs:
            return
        pairs, self._pairs = self._pairs, []
        self._compare_block(
            [pair[0] for pair in pairs],
            np.stack([pair[1] for pair in pairs]),
            np.stack([pair[2] for pair in pairs]),
            np.asarray([pair[3] for pair in pairs], dtype=np.int64),
        )

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

    def _repair_if_due(self) -> None:
        if len(self._to_upsert) + len(self._to_delete) >= self.options.repair_batch:
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

    def _source_batches(self) -> Iterable[Batch]:
        """Normalized pages of string-id rows in id order: from the child process when there is one."""
        if self.source_batches is not None:
            return self.source_batches()
        options = self.options
        return string_id_batches(
            self.source.string_id_page,
            options.dimension,
            options.id_max_length,
            options.source_page_size,
            options.retry,
        )

    def _target_pages(self) -> Iterator[tuple[list[str], np.ndarray]]:
        after: str | None = None
        while True:
            ids, vectors = self._retry(lambda after=after: self.target.page(after, self.options.target_page_size))
            if not ids:
                return
            yield ids, vectors
            after = ids[-1]

    def _full_scan(self) -> None:
        """Merge the two id-ordered streams block by block: a two-pointer walk over the ids of the current
        source batch and target page, then one numpy comparison of the rows both hold."""
        options = self.options
        batches = self._source_batches()
        sources = Prefetch(batches, depth=3)
        targets = Prefetch(self._target_pages(), depth=2)
        try:
            source_blocks, target_blocks = iter(sources), iter(targets)
            source = self._next_source(source_blocks)
            target = self._next_target(target_blocks)
            i = j = 0
            while source is not None or target is not None:
                if target is None:
                    assert source is not None
                    self._source_only(source, range(i, len(source.ids)))
                    source, i = self._next_source(source_blocks), 0
                elif source is None:
                    self._pending_target.extend(target[0][j:])
                    target, j = self._next_target(target_blocks), 0
                else:
                    i, j = self._merge_blocks(source, target, i, j)
                    if i == len(source.ids):
                        source, i = self._next_source(source_blocks), 0
                    if j == len(target[0]):
                        target, j = self._next_target(target_blocks), 0
                if len(self._pending_source) >= options.confirm_batch:
                    self._confirm_source_only()
                if len(self._pending_target) >= options.confirm_batch:
                    self._confirm_target_only()
        finally:
            sources.close()
            targets.close()
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        self._confirm_source_only()
        self._other_ids()
        self._confirm_target_only()
        self._compare_pairs()

    def _next_source(self, blocks: Iterator[Batch]) -> Batch | None:
        for batch in blocks:
            self._note_rejects(batch.rejects)
            self.source_rows += len(batch)
            if len(batch):
                return batch
        return None

    def _next_target(self, blocks: Iterator[tuple[list[str], np.ndarray]]) -> tuple[list[str], np.ndarray] | None:
        for ids, vectors in blocks:
            self.milvus_rows += len(ids)
            if ids:
                return ids, vectors
        return None

    def _source_only(self, batch: Batch, indexes: Iterable[int]) -> None:
        stamps = batch.updated_at
        for index in indexes:
            self._pending_source[batch.ids[index]] = (batch.vectors[index], int(stamps[index]))

    def _merge_blocks(self, source: Batch, target: tuple[list[str], np.ndarray], i: int, j: int) -> tuple[int, int]:
        """Walk both blocks from (i, j) until one ends; return where each stopped."""
        source_ids, (target_ids, target_vectors) = source.ids, target
        matched_source: list[int] = []
        matched_target: list[int] = []
        source_only: list[int] = []
        while i < len(source_ids) and j < len(target_ids):
            left, right = source_ids[i], target_ids[j]
            if left == right:
                matched_source.append(i)
                matched_target.append(j)
                i += 1
                j += 1
            elif left < right:
                source_only.append(i)
                i += 1
            else:
                self._pending_target.append(right)
                j += 1
        self._source_only(source, source_only)
        if matched_source:
            self._compare_block(
                [source_ids[k] for k in matched_source],
                source.vectors[matched_source],
                target_vectors[matched_target],
                source.updated_at[matched_source],
            )
        return i, j

    def _compare_block(self, ids: list[str], source: np.ndarray, target: np.ndarray, stamps: np.ndarray) -> None:
        measured = distances(source, target)
        self.max_distance = max(self.max_distance, float(measured.max()))
        unequal = np.flatnonzero(measured >= self.options.tolerance)
        self.matching += len(ids) - len(unequal)
        self._unequal.extend(ids[index] for index in unequal)
        if len(self._unequal) >= self.options.confirm_batch:
            self._recheck_unequal()

    def _recheck_unequal(self) -> None:
        """Read unequal rows again, Neo4j first, then Milvus: only rows still unequal are mismatches.

        While the engine dual-writes, a row written between the scan's Neo4j read and its Milvus read
        differs for a moment and then agrees again; counting it would fail the gate for nothing.
        """
        if not self._unequal:
            return
        ids, self._unequal = self._unequal, []
        options = self.options
        rows = self._retry(lambda: self.source.rows_for_ids(ids))
        batch = normalize([row for row in rows if isinstance(row[0], str)], options.dimension, options.id_max_length)
        fresh = {item_id: (batch.vectors[i], int(batch.updated_at[i])) for i, item_id in enumerate(batch.ids)}
        stored = self._retry(lambda: self.target.vectors(list(fresh)))
        for item_id in ids:
            if item_id not in fresh:
                self.source_rows -= 1  # deleted or made invalid since the scan read it: no longer a source row
                continue
            vector, stamp = fresh[item_id]
            target = stored.get(item_id)
            if target is not None and float(distances(vector[None, :], target[None, :])[0]) < options.tolerance:
                self.matching += 1
                continue
            self._finding(MISMATCH, item_id)
            self._to_upsert[item_id] = (vector, stamp)
        self._repair_if_due()

    def _other_ids(self) -> None:
        """Nodes whose id is missing or not a string, by the copy's rules (transform.normalize_other_ids)."""
        options = self.options
        for page in self._retry(lambda: list(self.source.other_id_pages(options.source_page_size))):
            batch = normalize_other_ids(
                page.rows,
                lambda texts: self._retry(lambda: self.source.existing_string_ids(texts)),
                options.dimension,
                options.id_max_length,
            )
            self._note_rejects(batch.rejects)
            self.source_rows += len(batch)
            self._source_only(batch, range(len(batch)))
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
            self._source_only(batch, range(len(batch)))
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
