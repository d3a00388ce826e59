"""The batched embedding copy Neo4j -> Milvus: extract, normalize, load, with state for resume.

One reader pages through Neo4j in id order; each page is validated and turned
into float32 columns (transform); up to ``concurrency`` upserts run at once
(milvus_writer); the checkpoint advances only over batches Milvus acknowledged
without a gap (checkpoint). Transient failures are retried with bounded
backoff; past the bound the copy stops with the checkpoint intact and says how
to resume. Kill it at any moment and a resume ends with every item present:
replayed batches are upserts on the source id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .catch_up import CatchUp
from .checkpoint import BatchMark, Checkpoint, Watermark, now_iso, resume_point
from .errors import MigrationError, TransientError
from .metrics import MetricsPusher, Rate
from .milvus_writer import MilvusWriter
from .neo4j_source import EmbeddingReader, Page
from .prefetch import Prefetch
from .reject_file import RejectLog
from .retry import RetryPolicy, with_retries
from .transform import Batch, normalize, normalize_other_ids

T = TypeVar("T")


@dataclass(frozen=True)
class CopyOptions:
    """How to copy; see the embeddings_copy module for each option."""

    collection: str
    dimension: int
    checkpoint_file: Path
    reject_file: Path
    batch_size: int = 1000
    concurrency: int = 4
    read_page_size: int = 1000
    max_rows_in_flight: int = 10_000
    id_max_length: int = 512
    resume_from: str | None = None
    fresh_start: bool = False
    max_reject_ratio: float = 0.001
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    check_mode: bool = False


def writers_in_flight(options: CopyOptions) -> int:
    """Parallel upserts: ``concurrency``, fewer when batches are so large that the memory in flight
    (each batch is held as float32, as a protobuf and as gRPC's serialized copy) would pass
    ``max_rows_in_flight`` rows."""
    return max(1, min(options.concurrency, options.max_rows_in_flight // max(1, options.batch_size)))


@dataclass
class CopyResult:
    """What one run did (or, in check mode, would do)."""

    changed: bool = False
    complete: bool = False
    started_from: str = "beginning"
    total: int = 0
    read: int = 0
    copied_this_run: int = 0
    migrated: int = 0
    rejected: int = 0
    rejected_by_kind: dict[str, int] = field(default_factory=dict)
    reject_ratio: float = 0.0
    reject_threshold_exceeded: bool = False
    retries: int = 0
    seconds: float = 0.0
    items_per_second: float = 0.0
    checkpoint: dict[str, Any] = field(default_factory=dict)
    checkpoint_file: str = ""
    reject_file: str = ""
    catch_up: dict[str, Any] | None = None
    message: str = ""


@dataclass
class WriteBatch:
    """Rows for one upsert and where the read order stands once Milvus has them."""

    batch: Batch
    last_id: str
    seen_at_last_id: int


class BatchAssembler:
    """Cuts validated read pages into write batches of ``batch_size`` rows.

    Reads go in pages of a fixed size (large enough to be fast, small enough that
    the Python floats of a page stay small); writes and checkpoints go by
    ``batch_size``. A batch that ends inside a page resumes after its last row;
    one that ends with a page resumes where the page says.
    """

    def __init__(self, batch_size: int, dimension: int) -> None:
        self.batch_size = batch_size
        self.dimension = dimension
        self._parts: list[Batch] = []
        self._rows = 0
        self._mark: tuple[str, int] | None = None

    def add(self, batch: Batch, page_last: str, page_seen: int) -> list[WriteBatch]:
        ready: list[WriteBatch] = []
        start = 0
        while len(batch) - start > 0:
            take = min(self.batch_size - self._rows, len(batch) - start)
            part = Batch(
                batch.ids[start : start + take],
                batch.vectors[start : start + take],
                batch.updated_at[start : start + take],
            )
            start += take
            self._parts.append(part)
            self._rows += take
            ends_page = start == len(batch)
            self._mark = (page_last, page_seen) if ends_page else (part.ids[-1], 1)
            if self._rows >= self.batch_size:
                ready.append(self._cut())
        if len(batch) == 0:  # every row of the page was rejected: the read order still moves on
            self._mark = (page_last, page_seen)
            if not self._parts:
                ready.append(WriteBatch(batch, page_last, page_seen))
        return ready

    def flush(self) -> list[WriteBatch]:
        return [self._cut()] if self._parts else []

    def _cut(self) -> WriteBatch:
        parts, self._parts, self._rows = self._parts, [], 0
        assert self._mark is not None
        if len(parts) == 1:
            merged = parts[0]
        else:
            merged = Batch(
                [item for part in parts for item in part.ids],
                np.concatenate([part.vectors for part in parts]),
                np.concatenate([part.updated_at for part in parts]),
            )
        return WriteBatch(merged, *self._mark)


def resume_command(checkpoint: Checkpoint, path: Path) -> str:
    """The exact commands that continue a stopped copy."""
    by_id = json.dumps({"resume_from": checkpoint.last_id}) if checkpoint.last_id else None
    text = (
        f"the checkpoint {path} is intact (last_id={checkpoint.last_id!r}, {checkpoint.migrated} migrated); "
        "resume with: ansible-playbook playbooks/migrate-embeddings.yml"
    )
    return text + (f" (or explicitly: -e '{by_id}')" if by_id else "")


class EmbeddingsCopy:
    """One run of the copy; ``run()`` returns its result or raises ``MigrationError``."""

    def __init__(
        self,
        reader: EmbeddingReader,
        writer: MilvusWriter | None,
        options: CopyOptions,
        metrics: MetricsPusher | None = None,
        log: Callable[[str], None] | None = None,
        catch_up: CatchUp | None = None,
    ) -> None:
        self.catch_up = catch_up
        self.reader = reader
        self.writer = writer
        self.options = options
        self.metrics = metrics
        self.log = log or (lambda _message: None)
        self.result = CopyResult(checkpoint_file=str(options.checkpoint_file), reject_file=str(options.reject_file))
        self.rate = Rate()
        self.failed_writes: int = 0

    def _retry(self, operation: Callable[[], T]) -> T:
        def count(attempt: int, error: TransientError, delay: float) -> None:
            self.result.retries += 1
            self.log(f"retry {attempt} in {delay:.1f}s: {error}")
            if self.metrics:
                self.metrics.set(migration_retries_total=self.result.retries)

        return with_retries(operation, self.options.retry, on_retry=count)

    def run(self) -> CopyResult:
        options = self.options
        started = time.monotonic()
        previous = None if options.fresh_start else Checkpoint.load(options.checkpoint_file)
        if previous and previous.complete and not options.resume_from:
            self.result.complete = True
            self.result.started_from = "checkpoint (complete)"
            rejects = RejectLog(options.reject_file, fresh=False, check_mode=options.check_mode)
            try:
                self._catch_up(previous, rejects)
            finally:
                rejects.close()
            self._finish_from(previous, rejects)
            self.result.changed = bool(self.result.catch_up and self.result.catch_up["copied"])
            self.result.message = "the checkpoint says the copy is complete (fresh_start=true copies again)" + (
                f"; catch-up: {self.result.catch_up['message']}" if self.result.catch_up else ""
            )
            return self.result
        start = resume_point(previous, options.resume_from, options.fresh_start)
        self.result.started_from = start["source"]
        checkpoint = previous if previous and start["source"].startswith("checkpoint") else Checkpoint()
        if options.resume_from:
            checkpoint.string_ids_done = False
        checkpoint.collection = options.collection
        checkpoint.complete = False
        rejects = RejectLog(options.reject_file, fresh=options.fresh_start, check_mode=options.check_mode)
        if self.metrics:
            self.metrics.start()
        try:
            checkpoint.total = self._read(self.reader.count)
            self.result.total = checkpoint.total
            if not checkpoint.string_ids_done:
                self._copy_string_ids(checkpoint, rejects, start["last_id"], start["seen_at_last_id"])
            self._copy_other_ids(checkpoint, rejects)
            checkpoint.complete = True
            checkpoint.finished_at = now_iso()
            checkpoint.rejected = rejects.count
            self._save(checkpoint)
            self._catch_up(checkpoint, rejects)
        except MigrationError as error:
            rejects.flush()
            checkpoint.rejected = rejects.count
            self._save(checkpoint)
            kind = "transient" if isinstance(error, TransientError) else "terminal"
            raise type(error)(
                f"copy stopped ({kind} error): {error}; {resume_command(checkpoint, options.checkpoint_file)}"
            ) from error
        finally:
            rejects.close()
            if self.metrics:
                self._publish(checkpoint, rejects)
                self.metrics.stop()
        self.result.complete = not options.check_mode
        self.result.seconds = round(time.monotonic() - started, 3)
        self._finish_from(checkpoint, rejects)
        caught_up = bool(self.result.catch_up and self.result.catch_up["copied"])
        self.result.changed = (
            self.result.copied_this_run > 0 or caught_up or (options.check_mode and self.result.read > 0)
        )
        return self.result

    def _catch_up(self, checkpoint: Checkpoint, rejects: RejectLog) -> None:
        """Re-copy what changed since the copy started (or since the last catch-up) and move the mark on."""
        if self.catch_up is None:
            return
        since = checkpoint.caught_up_to_epoch_ms or checkpoint.started_at_epoch_ms
        outcome = self.catch_up.run(since, on_reject=rejects.add)
        rejects.flush()
        self.result.catch_up = asdict(outcome)
        if outcome.available and outcome.caught_up_to_epoch_ms:
            checkpoint.caught_up_to_epoch_ms = outcome.caught_up_to_epoch_ms
            checkpoint.rejected = rejects.count
            self._save(checkpoint)

    def _finish_from(self, checkpoint: Checkpoint, rejects: RejectLog) -> None:
        result = self.result
        result.migrated = checkpoint.migrated
        result.total = checkpoint.total or result.total
        result.rejected = rejects.count
        result.rejected_by_kind = dict(sorted(rejects.by_kind.items()))
        considered = result.read if self.options.check_mode else result.migrated + result.rejected
        result.reject_ratio = round(result.rejected / considered, 6) if considered else 0.0
        result.reject_threshold_exceeded = result.reject_ratio > self.options.max_reject_ratio
        result.items_per_second = round(result.copied_this_run / result.seconds, 1) if result.seconds else 0.0
        result.checkpoint = asdict(checkpoint)

    def _read(self, query: Callable[[], T]) -> T:
        """A Neo4j read (the reader sorts its failures) with retries for transient ones."""
        return self._retry(query)

    def _save(self, checkpoint: Checkpoint) -> None:
        if not self.options.check_mode:
            checkpoint.save(self.options.checkpoint_file)

    def _publish(self, checkpoint: Checkpoint, rejects: RejectLog) -> None:
        if not self.metrics:
            return
        done = checkpoint.migrated
        self.metrics.set(
            migration_migrated_items=done,
            migration_total_items=checkpoint.total,
            migration_rejected_items=rejects.count,
            migration_errors_total=rejects.count + self.failed_writes,
            migration_items_per_second=self.rate.per_second(self.result.copied_this_run),
            migration_eta_seconds=self.rate.eta(done, max(checkpoint.total - rejects.count, done)),
            migration_last_success_timestamp_seconds=time.time(),
        )

    def _write(self, batch: Batch) -> int:
        writer = self.writer
        assert writer is not None
        return self._retry(lambda: writer.upsert(batch.ids, batch.vectors, batch.updated_at))

    def _string_id_pages(self, last: str, seen_at_last: int) -> Iterator[Page]:
        """Read pages in id order from a resume point, each read retried (and counted) on transient failures."""
        while True:
            page = self._read(partial(self.reader.string_id_page, last, seen_at_last, self.options.read_page_size))
            if not page.rows:
                return
            yield page
            last, seen_at_last = page.last_key, page.seen_at_last_key

    def _copy_string_ids(self, checkpoint: Checkpoint, rejects: RejectLog, last: str, seen_at_last: int) -> None:
        options = self.options
        watermark = Watermark()
        in_flight: dict[Future[int], BatchMark] = {}
        previous_id: str | None = last if seen_at_last else None
        sequence = 0
        failure: MigrationError | None = None

        def settle(block: bool) -> None:
            nonlocal failure
            if not in_flight:
                return
            done, _ = wait(list(in_flight), timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for future in done:
                mark = in_flight.pop(future)
                try:
                    future.result()
                except MigrationError as error:
                    self.failed_writes += mark.migrated
                    failure = failure or error
                    continue
                for passed in watermark.acknowledge(mark):
                    checkpoint.last_id = passed.last_id
                    checkpoint.seen_at_last_id = passed.seen_at_last_id
                    checkpoint.migrated += passed.migrated
                    checkpoint.batches += 1
                    self.result.copied_this_run += passed.migrated
                rejects.flush()
                checkpoint.rejected = rejects.count
                self._save(checkpoint)
                self._publish(checkpoint, rejects)

        writers = writers_in_flight(options)
        with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="upsert") as pool:
            pages = Prefetch(self._string_id_pages(last, seen_at_last))
            assembler = BatchAssembler(options.batch_size, options.dimension)

            def submit(ready: list[WriteBatch]) -> None:
                nonlocal sequence
                for write in ready:
                    mark = BatchMark(sequence, write.last_id, write.seen_at_last_id, len(write.batch))
                    sequence += 1
                    if options.check_mode:
                        self.result.copied_this_run += len(write.batch)
                        continue
                    work = partial(self._write, write.batch) if len(write.batch) else (lambda: 0)
                    in_flight[pool.submit(work)] = mark
                    settle(block=len(in_flight) >= writers)

            try:
                for page in pages:
                    if failure is not None:
                        break
                    seen = {previous_id} if previous_id is not None else set()
                    batch = normalize(page.rows, options.dimension, options.id_max_length, seen_ids=seen)
                    self.result.read += len(page.rows)
                    page.rows.clear()  # the Python floats are the bulk of the memory: free them before waiting
                    for reject in batch.rejects:
                        rejects.add(reject)
                    if batch.ids:
                        previous_id = batch.ids[-1]
                    submit(assembler.add(batch, page.last_key, page.seen_at_last_key))
                if failure is None:
                    submit(assembler.flush())
            finally:
                pages.close()
                while in_flight:
                    settle(block=True)
        if failure is not None:
            raise failure
        checkpoint.string_ids_done = True
        self._save(checkpoint)

    def _copy_other_ids(self, checkpoint: Checkpoint, rejects: RejectLog) -> None:
        """Nodes whose id is missing or not a string (transform.normalize_other_ids): rare, so written one
        batch at a time."""
        options = self.options
        checkpoint.migrated -= checkpoint.other_ids_migrated  # this pass always runs whole; count it once
        checkpoint.other_ids_migrated = 0
        for page in self._read(lambda: list(self.reader.other_id_pages(options.batch_size))):
            self.result.read += len(page.rows)
            batch = normalize_other_ids(
                page.rows,
                lambda texts: self._read(partial(self.reader.existing_string_ids, texts)),
                options.dimension,
                options.id_max_length,
            )
            for reject in batch.rejects:
                rejects.add(reject)
            if options.check_mode:
                self.result.copied_this_run += len(batch)
                continue
            if batch.ids:
                written = self._write(batch)
                checkpoint.migrated += written
                checkpoint.other_ids_migrated += written
                self.result.copied_this_run += written
            rejects.flush()
            self._save(checkpoint)
