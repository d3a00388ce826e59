"""Catch-up after the copy: re-copy what changed in Neo4j while the copy ran.

The copy reads each node once; a node updated after it was read reaches Milvus
stale (or, created below the copy's cursor, not at all) unless dual-write wrote
it. Each pass reads the nodes whose updated-at is at or after a moment (the
copy's start, then each pass's own start, less a clock-skew margin), and upserts
those whose stamp Milvus does not already hold. Passes repeat until one finds
nothing to write. Deletes leave no trace to scan for: validation with repair
removes their orphans. Without an updated-at property there is nothing to scan,
and the result says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

from .neo4j_source import Row
from .retry import RetryPolicy, with_retries
from .transform import Reject, normalize

T = TypeVar("T")


class ChangeSource(Protocol):
    """What catch-up reads from Neo4j (neo4j_source.EmbeddingLookup)."""

    def has_updated_at(self) -> bool: ...
    def updated_at_indexed(self) -> bool: ...
    def changed_page(
        self, last: int, until: int, seen: frozenset[str], limit: int
    ) -> tuple[list[Row], int, frozenset[str]]: ...


class StampTarget(Protocol):
    """What catch-up reads from Milvus (milvus_reader.MilvusRows)."""

    def updated_at(self, ids: list[str], chunk: int = 1000) -> dict[str, int]: ...


class Writer(Protocol):
    def upsert(self, ids: list[str], vectors: np.ndarray, updated_at: np.ndarray) -> int: ...


@dataclass(frozen=True)
class CatchUpOptions:
    """How to catch up; see the embeddings_copy module's catch_up options."""

    dimension: int
    updated_at_property: str = "updated_at"
    id_max_length: int = 512
    page_size: int = 1000
    max_passes: int = 10
    clock_skew_ms: int = 60_000
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    check_mode: bool = False


@dataclass
class CatchUpResult:
    """What the catch-up found and wrote (in check mode, would write)."""

    available: bool = True
    reason: str = ""
    indexed: bool = False
    since_epoch_ms: int = 0
    caught_up_to_epoch_ms: int = 0
    passes: int = 0
    changed_rows: int = 0
    copied: int = 0
    already_current: int = 0
    rejected: int = 0
    settled: bool = False
    seconds: float = 0.0
    message: str = ""


def now_ms() -> int:
    return int(time.time() * 1000)


class CatchUp:
    """Repeated passes over the nodes changed since a moment."""

    def __init__(
        self,
        source: ChangeSource,
        target: StampTarget,
        writer: Writer | None,
        options: CatchUpOptions,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.source = source
        self.target = target
        self.writer = writer
        self.options = options
        self.log = log or (lambda _message: None)
        self.clock = clock

    def _retry(self, operation: Callable[[], T]) -> T:
        return with_retries(operation, self.options.retry, on_retry=lambda n, e, d: self.log(f"retry {n}: {e}"))

    def run(self, since_ms: int, on_reject: Callable[[Reject], None] | None = None) -> CatchUpResult:
        """Catch up from ``since_ms``; each row that cannot move goes to ``on_reject`` (the copy's reject file)."""
        options = self.options
        started = time.monotonic()
        result = CatchUpResult(since_epoch_ms=since_ms)
        if not self._retry(self.source.has_updated_at):
            result.available = False
            result.reason = (
                f"no node carries the property {options.updated_at_property!r}, so changes made while the copy ran "
                "cannot be found by time; run playbooks/validate.yml -e full_scan=true -e fix_inconsistencies=true "
                "to find and repair them"
            )
            result.message = result.reason
            return result
        result.indexed = bool(self._retry(self.source.updated_at_indexed))
        written: dict[str, int] = {}
        since = since_ms - options.clock_skew_ms
        for _ in range(options.max_passes):
            pass_started = self.clock()
            result.passes += 1
            new = self._one_pass(since, pass_started, written, result, on_reject or (lambda _reject: None))
            result.caught_up_to_epoch_ms = pass_started
            if new == 0 or options.check_mode:
                result.settled = new == 0
                break
            since = pass_started - options.clock_skew_ms
        result.seconds = round(time.monotonic() - started, 3)
        if result.settled:
            result.message = (
                f"caught up in {result.passes} pass(es): {result.changed_rows} changed rows since the copy started, "
                f"{result.copied} {'would be ' if options.check_mode else ''}copied, "
                f"{result.already_current} already current in Milvus"
            )
        elif options.check_mode:
            result.message = f"would copy {result.copied} changed rows in the first pass"
        else:
            result.message = (
                f"changes were still arriving after {result.passes} passes ({result.copied} copied); "
                "dual-write carries them from here, and validation with repair checks the rest"
            )
        if not result.indexed:
            result.message += (
                f"; no range index on {options.updated_at_property!r}, so each pass scans the label "
                "(CREATE RANGE INDEX FOR (m:<label>) ON (m.<property>) makes it fast)"
            )
        return result

    def _one_pass(
        self,
        since: int,
        until: int,
        written: dict[str, int],
        result: CatchUpResult,
        on_reject: Callable[[Reject], None],
    ) -> int:
        """Upsert the rows changed in [``since``, ``until``) that Milvus lacks; return how many that was.

        Rows stamped from ``until`` on belong to the next pass, so a pass ends even while writes go on.
        """
        options = self.options
        new = 0
        cursor: tuple[int, frozenset[str]] = (since, frozenset())
        while True:
            last, seen = cursor
            rows, *moved = self._retry(
                lambda last=last, seen=seen: self.source.changed_page(last, until, seen, options.page_size)
            )
            if not rows:
                return new
            cursor = (moved[0], moved[1])
            batch = normalize(rows, options.dimension, options.id_max_length)
            for reject in batch.rejects:
                result.rejected += 1
                on_reject(reject)
            if not batch.ids:
                continue
            stamps = batch.updated_at.tolist()
            fresh = [i for i, item_id in enumerate(batch.ids) if written.get(item_id) != stamps[i]]
            result.changed_rows += len(fresh)
            fresh_ids = [batch.ids[i] for i in fresh]
            stored = self._retry(lambda fresh_ids=fresh_ids: self.target.updated_at(fresh_ids))
            needed = [i for i in fresh if stored.get(batch.ids[i]) != stamps[i]]
            result.already_current += len(fresh) - len(needed)
            for i in fresh:
                written[batch.ids[i]] = stamps[i]
            if not needed:
                continue
            new += len(needed)
            ids = [batch.ids[i] for i in needed]
            if not options.check_mode and self.writer is not None:
                self._upsert(ids, batch.vectors[needed], batch.updated_at[needed])
            result.copied += len(ids)

    def _upsert(self, ids: list[str], vectors: np.ndarray, updated_at: np.ndarray) -> None:
        writer = self.writer
        assert writer is not None
        self._retry(lambda: writer.upsert(ids, vectors, updated_at))
