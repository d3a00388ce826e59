"""The AgentDB copy Redis -> PostgreSQL: extract, normalize, load, with explicit state for resume.

A reader thread walks the agents in id order (agentdb_source), turns each
record into a typed row or a reject (agentdb_records) and groups rows into
batches of ``batch_size``; the main thread upserts each batch in one
transaction (agentdb_load) and then moves the checkpoint to the batch's last
record: the agent and its last committed stream entry id. Kill it at any
moment and a resume continues from there; a replayed batch changes nothing.
At the end both stores are compared agent by agent (agentdb_verify).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .agentdb_load import LOAD_ORDER, PostgresLoader, encode_rows
from .agentdb_records import RecordReject
from .agentdb_schema import SchemaResult, ensure_schema
from .agentdb_source import Inventory, RedisAgentSource
from .agentdb_verify import compare, per_agent, tally_postgres, tally_redis
from .checkpoint import CheckpointFile, now_iso
from .errors import MigrationError, TerminalError, TransientError
from .metrics import MetricsPusher, Rate
from .reject_file import RejectLog
from .retry import RetryPolicy
from .run_state import write_atomically


@dataclass(frozen=True)
class AgentCopyOptions:
    checkpoint_file: Path
    reject_file: Path
    verification_file: Path | None = None
    schema: str = "agentdb"
    batch_size: int = 1000
    skip_history: bool = False
    fresh_start: bool = False
    verify: bool = True
    checkpoint_interval: float = 1.0
    max_reject_ratio: float = 0.001
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    check_mode: bool = False


@dataclass
class AgentCheckpoint(CheckpointFile):
    """Where the copy stands: every agent sorted before ``agent_id`` is done."""

    agent_id: str = ""
    entry_id: str = ""
    agent_done: bool = False
    skip_history: bool = False
    agents_done: int = 0
    loaded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOAD_ORDER, 0))
    rejected: int = 0
    batches: int = 0
    complete: bool = False
    started_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    finished_at: str | None = None

    def position(self) -> tuple[str, str, bool]:
        return self.agent_id, self.entry_id, self.agent_done


@dataclass
class AgentCopyResult:
    changed: bool = False
    complete: bool = False
    started_from: str = "beginning"
    skip_history: bool = False
    schema: dict[str, Any] = field(default_factory=dict)
    agents_total: int = 0
    experiences_total: int = 0
    read: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOAD_ORDER, 0))
    loaded_this_run: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOAD_ORDER, 0))
    changed_rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOAD_ORDER, 0))
    rejected: int = 0
    rejected_this_run: int = 0
    rejected_by_kind: dict[str, int] = field(default_factory=dict)
    reject_ratio: float = 0.0
    reject_threshold_exceeded: bool = False
    batches: int = 0
    batches_copied_straight: int = 0
    retries: int = 0
    seconds: float = 0.0
    copy_seconds: float = 0.0
    verify_seconds: float = 0.0
    experiences_per_second: float = 0.0
    rows_per_second: float = 0.0
    checkpoint: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    checkpoint_file: str = ""
    reject_file: str = ""
    verification_file: str = ""
    message: str = ""


@dataclass
class Batch:
    """Rows of several tables as COPY payloads, ready for one transaction."""

    payloads: dict[str, bytes]
    counts: dict[str, int]
    rejects: list[RecordReject]
    position: tuple[str, str, bool]
    agents_finished: int


class AgentDBCopy:
    """One run of the copy; ``run()`` returns its result or raises ``MigrationError``."""

    def __init__(
        self,
        source: RedisAgentSource,
        connect: Callable[[], Any],
        options: AgentCopyOptions,
        metrics: MetricsPusher | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.connect = connect
        self.options = options
        self.metrics = metrics
        self.log = log or (lambda _message: None)
        self.valid_rows = 0  # rows Redis holds that should be in PostgreSQL, once verified
        self.result = AgentCopyResult(
            skip_history=options.skip_history,
            checkpoint_file=str(options.checkpoint_file),
            reject_file=str(options.reject_file),
            verification_file=str(options.verification_file or ""),
        )

    def run(self) -> AgentCopyResult:
        started = time.monotonic()
        options = self.options
        connection = self.connect()
        try:
            schema = ensure_schema(connection, options.schema, options.check_mode)
            self.result.schema = asdict(schema)
            self.result.changed = schema.changed
            inventory = self.source.inventory()
            self.result.agents_total = len(inventory.agent_ids)
            self.result.experiences_total = 0 if options.skip_history else inventory.experiences
            checkpoint = None if options.fresh_start else AgentCheckpoint.load(options.checkpoint_file)
            rejects = RejectLog(options.reject_file, fresh=options.fresh_start, check_mode=options.check_mode)
            known_rejects = rejects.count
            try:
                for reject in inventory_rejects(inventory, self.source):
                    rejects.add(reject)
                if options.check_mode:
                    self._dry_run(connection, schema, inventory, rejects)
                else:
                    checkpoint = self._copy(inventory, checkpoint, rejects)
                    if options.verify:
                        self._verify(connection, inventory, refused_by_postgres(rejects))
            finally:
                rejects.close()
            self._count_rejects(rejects, checkpoint)
            self.result.rejected_this_run = rejects.count - known_rejects
        finally:
            connection.close()
        self.result.retries = self.source.retries + self.result.retries
        self.result.seconds = round(time.monotonic() - started, 2)
        return self.result

    def _starting_point(self, checkpoint: AgentCheckpoint | None) -> AgentCheckpoint:
        options = self.options
        if checkpoint is None:
            self.result.started_from = "beginning (fresh_start)" if options.fresh_start else "beginning"
            return AgentCheckpoint(skip_history=options.skip_history)
        if checkpoint.skip_history and not options.skip_history:
            self.result.started_from = "beginning (the last copy skipped the experiences)"
            return AgentCheckpoint(skip_history=False)
        if checkpoint.complete:
            self.result.started_from = f"checkpoint (complete since {checkpoint.finished_at})"
        else:
            entry = f" after entry {checkpoint.entry_id}" if checkpoint.entry_id else ""
            where = f"agent {checkpoint.agent_id}{entry}"
            self.result.started_from = f"checkpoint ({where})"
        checkpoint.skip_history = checkpoint.skip_history and options.skip_history
        return checkpoint

    def _copy(self, inventory: Inventory, previous: AgentCheckpoint | None, rejects: RejectLog) -> AgentCheckpoint:
        options = self.options
        checkpoint = self._starting_point(previous)
        if checkpoint.complete:
            self.result.complete = True
            self.result.message = "the copy was complete; nothing read again but the verification"
            self.result.checkpoint = asdict(checkpoint)
            return checkpoint
        loader = PostgresLoader(self.connect, options.schema, self.source.layout.agent_keys, options.retry)
        rate = Rate()
        copy_started = time.monotonic()
        batches = self._read_in_process(inventory, checkpoint.position())
        last_save = 0.0
        try:
            for batch in batches:
                if self.metrics and not self.metrics.started:  # after the fork: a forked thread would be a copy
                    self.metrics.set(migration_total_items=self._progress_total(inventory))
                    self.metrics.start()
                changed, refused = loader.load(batch.payloads)
                for reject in batch.rejects + refused:
                    rejects.add(reject)
                rejects.flush()
                for name, count in batch.counts.items():
                    self.result.loaded_this_run[name] += count
                    checkpoint.loaded[name] = checkpoint.loaded.get(name, 0) + count
                for name, count in changed.items():
                    self.result.changed_rows[name] += count
                checkpoint.agent_id, checkpoint.entry_id, checkpoint.agent_done = batch.position
                checkpoint.agents_done += batch.agents_finished
                checkpoint.rejected = rejects.count
                checkpoint.batches += 1
                if time.monotonic() - last_save >= options.checkpoint_interval:
                    # Every batch before this one is committed; a resume replays at most one interval, harmlessly.
                    checkpoint.save(options.checkpoint_file)
                    last_save = time.monotonic()
                self.result.batches += 1
                if self.metrics:
                    done = self._progress_done(checkpoint)
                    self.metrics.set(
                        migration_migrated_items=done,
                        migration_errors_total=rejects.count,
                        migration_rejected_items=rejects.count,
                        migration_items_per_second=rate.per_second(self.result.loaded_this_run["experiences"]),
                        migration_eta_seconds=rate.eta(done, self._progress_total(inventory)),
                        migration_retries_total=loader.retries + self.source.retries,
                        migration_last_success_timestamp_seconds=time.time(),
                    )
        except MigrationError as error:
            raise MigrationError(f"{error}; {resume_command(checkpoint, options.checkpoint_file)}") from error
        finally:
            batches.close()
            loader.close()
            if self.metrics and self.metrics.started:
                self.metrics.stop()
        self.result.retries += loader.retries
        self.result.batches_copied_straight = loader.direct_batches
        checkpoint.complete = True
        checkpoint.finished_at = now_iso()
        checkpoint.save(options.checkpoint_file)
        elapsed = time.monotonic() - copy_started
        self.result.copy_seconds = round(elapsed, 2)
        loaded = self.result.loaded_this_run
        if elapsed > 0:
            self.result.experiences_per_second = round(loaded["experiences"] / elapsed, 1)
            self.result.rows_per_second = round(sum(loaded.values()) / elapsed, 1)
        self.result.read = dict(loaded)
        self.result.complete = True
        self.result.changed = self.result.changed or any(self.result.changed_rows.values())
        self.result.checkpoint = asdict(checkpoint)
        return checkpoint

    def _progress_total(self, inventory: Inventory) -> int:
        return len(inventory.agent_ids) + (0 if self.options.skip_history else inventory.experiences)

    def _progress_done(self, checkpoint: AgentCheckpoint) -> int:
        return checkpoint.agents_done + (0 if self.options.skip_history else checkpoint.loaded.get("experiences", 0))

    def _batches(self, inventory: Inventory, position: tuple[str, str, bool]) -> Iterator[Batch]:
        """Rows grouped into batches of about ``batch_size``, each with the position of its last record."""
        size = self.options.batch_size
        rows: dict[str, list[Any]] = {name: [] for name in LOAD_ORDER}
        rejects: list[RecordReject] = []
        finished = 0
        last = position

        def cut() -> Batch:
            payloads = {name: encode_rows(name, values) for name, values in rows.items() if values}
            counts = {name: len(values) for name, values in rows.items()}
            return Batch(payloads, counts, rejects, last, finished)

        for part_rows, part_rejects, part_position in self._records(inventory, position):
            for name, values in part_rows.items():
                rows[name].extend(values)
            rejects.extend(part_rejects)
            last = part_position
            finished += part_position[2]
            if sum(len(values) for values in rows.values()) >= size:
                yield cut()
                rows = {name: [] for name in LOAD_ORDER}
                rejects, finished = [], 0
        if any(rows.values()) or rejects or last != position:
            yield cut()

    def _read_in_process(self, inventory: Inventory, position: tuple[str, str, bool]) -> Iterator[Batch]:
        """Extract and normalize in a forked process, so Python parsing and PostgreSQL loading use both cores.

        If this process dies, the reader's next send fails and it ends; if the reader dies, this one says so.
        """
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        reader = context.Process(
            target=self._reader_main, args=(inventory, position, sender), name="agentdb-reader", daemon=True
        )
        reader.start()
        sender.close()
        try:
            while True:
                try:
                    kind, payload = receiver.recv()
                except EOFError as error:
                    raise TransientError("the Redis reader process ended without finishing (killed?)") from error
                if kind == "batch":
                    yield payload
                elif kind == "end":
                    self.result.retries += payload
                    return
                else:
                    error_type = TransientError if kind == "transient" else TerminalError
                    raise error_type(payload)
        finally:
            receiver.close()
            reader.join(timeout=10)
            if reader.is_alive():
                reader.kill()
                reader.join()

    def _reader_main(self, inventory: Inventory, position: tuple[str, str, bool], sender: Any) -> None:
        try:
            for batch in self._batches(inventory, position):
                sender.send(("batch", batch))
            sender.send(("end", self.source.retries))
        except (BrokenPipeError, ConnectionResetError):
            return  # the loader is gone; nothing to tell
        except TransientError as error:
            sender.send(("transient", str(error)))
        except Exception as error:  # handed to the loader, which fails the run with it
            sender.send(("terminal", f"{type(error).__name__}: {error}"))
        finally:
            sender.close()

    def _records(
        self, inventory: Inventory, position: tuple[str, str, bool]
    ) -> Iterator[tuple[dict[str, list[Any]], list[RecordReject], tuple[str, str, bool]]]:
        """Every record after ``position``: per agent its head, then its experiences in ranges."""
        resume_agent, resume_entry, resume_done = position
        with_history = not self.options.skip_history
        for agent_id in inventory.agent_ids:
            if resume_agent and (agent_id < resume_agent or (agent_id == resume_agent and resume_done)):
                continue
            resuming = agent_id == resume_agent
            head = self.source.head(agent_id)
            copies_history = with_history and head.agent is not None and head.has_experiences
            if not resuming:
                part = {
                    "agents": [head.agent] if head.agent else [],
                    "q_values": head.qvalues,
                    "policies": [head.policy] if head.policy else [],
                }
                yield part, head.rejects, (agent_id, "", not copies_history)
            if not copies_history:
                if resuming:
                    yield {}, [], (agent_id, resume_entry, True)
                continue
            after = resume_entry if resuming else ""
            for experience_rows, experience_rejects, last_id in self.source.experiences(
                agent_id, head.experiences_key, after, self.options.batch_size
            ):
                after = last_id
                yield {"experiences": experience_rows}, experience_rejects, (agent_id, last_id, False)
            yield {}, [], (agent_id, after, True)

    def _dry_run(self, connection: Any, schema: SchemaResult, inventory: Inventory, rejects: RejectLog) -> None:
        """Check mode: read and validate everything, compare with PostgreSQL when its tables exist."""
        started = time.monotonic()
        include_history = not self.options.skip_history

        def collect(_agent_id: str, item: Any) -> None:
            for reject in item if isinstance(item, list) else item.rejects:
                rejects.add(reject)

        # Records PostgreSQL refused in an earlier run are known only from the reject file.
        refused = refused_by_postgres(rejects)
        redis = tally_redis(
            self.source, inventory.agent_ids, include_history, self.options.batch_size, collect, refused
        )
        for name in LOAD_ORDER:
            self.result.read[name] = redis.totals(name)[0]
        if schema.current_version == schema.target_version:
            postgres = tally_postgres(connection, self.options.schema, include_history)
            self.result.verification = compare(redis, postgres, include_history)
            self.result.changed = self.result.changed or not self.result.verification["equal"]
        else:
            self.result.changed = True
            self.result.verification = {"equal": False, "message": "the AgentDB tables do not exist yet"}
        self.result.verify_seconds = round(time.monotonic() - started, 2)
        self.result.message = "check mode: read and validated, nothing written"

    def _verify(self, connection: Any, inventory: Inventory, refused: set[str]) -> None:
        started = time.monotonic()
        include_history = not self.options.skip_history
        redis = tally_redis(self.source, inventory.agent_ids, include_history, self.options.batch_size, refused=refused)
        postgres = tally_postgres(connection, self.options.schema, include_history)
        self.result.verification = compare(redis, postgres, include_history)
        if self.options.verification_file:
            write_atomically(
                self.options.verification_file,
                json.dumps(
                    {
                        "checked_at": now_iso(),
                        "summary": self.result.verification,
                        "agents": per_agent(redis, postgres, include_history),
                    },
                    indent=1,
                )
                + "\n",
            )
        self.result.verify_seconds = round(time.monotonic() - started, 2)
        self.valid_rows = sum(redis.totals(name)[0] for name in LOAD_ORDER)

    def _count_rejects(self, rejects: RejectLog, checkpoint: AgentCheckpoint | None) -> None:
        self.result.rejected = rejects.count
        self.result.rejected_by_kind = dict(sorted(rejects.by_kind.items()))
        valid = self.valid_rows or sum(self.result.read.values())
        if checkpoint is not None and not valid:
            valid = sum(checkpoint.loaded.values())
        total = valid + rejects.count
        self.result.reject_ratio = round(rejects.count / total, 6) if total else 0.0
        self.result.reject_threshold_exceeded = self.result.reject_ratio > self.options.max_reject_ratio


def refused_by_postgres(rejects: RejectLog) -> set[str]:
    """Keys of the records PostgreSQL refused, in this run or an earlier one."""
    return {key for key, kind in rejects.keys if kind == "postgres_refused"}


def inventory_rejects(inventory: Inventory, source: RedisAgentSource) -> list[RecordReject]:
    """Keys under the prefix that belong to no listed agent, and ids that cannot name a row."""
    agents_key = source.layout.key(source.layout.agents_set)
    found = [
        RecordReject(key, "unlisted_key", "key under the prefix belongs to no agent in the agents set")
        for key in inventory.stray_keys
    ]
    found += [RecordReject(f"{agents_key} {member}", "bad_agent_id", problem) for member, problem in inventory.bad_ids]
    return found


def resume_command(checkpoint: AgentCheckpoint, path: Path) -> str:
    return (
        f"the checkpoint {path} is intact (agent {checkpoint.agent_id or '-'}, entry {checkpoint.entry_id or '-'}); "
        "resume with: ansible-playbook playbooks/migrate-agentdb.yml"
    )
