"""The copy's orchestration with an in-memory reader and writer (the real servers are in tests/integration)."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest
from ansible.module_utils.hybrid_migration.embeddings_copy import CopyOptions, EmbeddingsCopy
from ansible.module_utils.hybrid_migration.errors import TerminalError, TransientError
from ansible.module_utils.hybrid_migration.neo4j_source import Page
from ansible.module_utils.hybrid_migration.retry import RetryPolicy

DIM = 3


class MemoryReader:
    def __init__(self, rows: list[tuple]) -> None:
        self.strings = sorted((r for r in rows if isinstance(r[0], str)), key=lambda r: r[0])
        self.others = [r for r in rows if not isinstance(r[0], str)]

    def count(self) -> int:
        return len(self.strings) + len(self.others)

    def string_id_page(self, last: str, seen_at_last: int, limit: int) -> Page:
        after = [r for r in self.strings if r[0] >= last]
        rows, skipped = [], 0
        for row in after[: limit + seen_at_last]:
            if skipped < seen_at_last and row[0] == last:
                skipped += 1
                continue
            rows.append(row)
        if not rows:
            return Page([], last, seen_at_last)
        final = rows[-1][0]
        return Page(rows, final, sum(1 for r in rows if r[0] == final) + (seen_at_last if final == last else 0))

    def other_id_pages(self, limit: int):
        if self.others:
            yield Page(list(self.others), "x", 0)

    def existing_string_ids(self, ids: list[str]) -> set[str]:
        return {r[0] for r in self.strings} & set(ids)


class MemoryWriter:
    """Upserts into a dict, finishing batches in random order; can fail on a given batch."""

    def __init__(self, fail_on: str | None = None, error: Exception | None = None) -> None:
        self.rows: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.fail_on = fail_on
        self.error = error

    def upsert(self, ids, vectors, updated_at) -> int:
        time.sleep(random.uniform(0, 0.01))
        if self.fail_on in ids:
            raise self.error
        with self.lock:
            for item_id, vector in zip(ids, vectors, strict=True):
                self.rows[item_id] = vector.tolist()
        return len(ids)


def rows(n: int) -> list[tuple]:
    return [(f"m-{i:04d}", [float(i), 1.0, 2.0], i) for i in range(n)]


def options(tmp_path: Path, **overrides) -> CopyOptions:
    values = {
        "collection": "c",
        "dimension": DIM,
        "checkpoint_file": tmp_path / "checkpoint.json",
        "reject_file": tmp_path / "rejects.jsonl",
        "batch_size": 7,
        "concurrency": 4,
        "max_reject_ratio": 0.5,
        "retry": RetryPolicy(attempts=2, initial_delay=0.001, max_delay=0.001),
    }
    values.update(overrides)
    return CopyOptions(**values)


def test_everything_valid_arrives_and_bad_rows_are_named(tmp_path: Path) -> None:
    source = [*rows(100), ("bad", None, 0), (None, [1.0, 2.0, 3.0], 0), (7, [1.0, 1.0, 1.0], 0), ("m-0007x", [1.0], 0)]
    writer = MemoryWriter()
    result = EmbeddingsCopy(MemoryReader(source), writer, options(tmp_path)).run()
    assert result.complete and result.migrated == 101 and set(writer.rows) == {r[0] for r in rows(100)} | {"7"}
    assert result.rejected_by_kind == {"missing_embedding": 1, "missing_id": 1, "wrong_dimension": 1}
    checkpoint = json.loads((tmp_path / "checkpoint.json").read_text())
    assert checkpoint["complete"] and checkpoint["last_id"] == "m-0099"


def test_a_failed_batch_leaves_the_checkpoint_below_it_and_a_resume_finishes(tmp_path: Path) -> None:
    failing = MemoryWriter(fail_on="m-0050", error=TransientError("Milvus unreachable"))
    with pytest.raises(TransientError, match=r"resume with: ansible-playbook playbooks/migrate-embeddings\.yml"):
        EmbeddingsCopy(MemoryReader(rows(100)), failing, options(tmp_path)).run()
    checkpoint = json.loads((tmp_path / "checkpoint.json").read_text())
    assert not checkpoint["complete"]
    assert checkpoint["last_id"] < "m-0050", "the checkpoint passed a batch Milvus never acknowledged"
    assert checkpoint["migrated"] == int(checkpoint["last_id"][2:]) + 1
    healthy = MemoryWriter()
    result = EmbeddingsCopy(MemoryReader(rows(100)), healthy, options(tmp_path)).run()
    assert result.complete and result.migrated == 100
    assert result.started_from.startswith("checkpoint")
    assert set(healthy.rows) | set(failing.rows) == {r[0] for r in rows(100)}
    assert min(healthy.rows) > checkpoint["last_id"]


def test_terminal_errors_stop_at_once(tmp_path: Path) -> None:
    writer = MemoryWriter(fail_on="m-0003", error=TerminalError("schema mismatch"))
    with pytest.raises(TerminalError, match="terminal error"):
        EmbeddingsCopy(MemoryReader(rows(30)), writer, options(tmp_path, concurrency=1)).run()


def test_rejects_are_written_once_across_resumes(tmp_path: Path) -> None:
    source = [*rows(20), ("bad-1", None, 0)]
    EmbeddingsCopy(MemoryReader(source), MemoryWriter(), options(tmp_path)).run()
    EmbeddingsCopy(MemoryReader(source), MemoryWriter(), options(tmp_path, resume_from="a")).run()
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 1


def test_a_complete_checkpoint_makes_a_rerun_change_nothing(tmp_path: Path) -> None:
    EmbeddingsCopy(MemoryReader(rows(20)), MemoryWriter(), options(tmp_path)).run()
    writer = MemoryWriter()
    again = EmbeddingsCopy(MemoryReader(rows(20)), writer, options(tmp_path)).run()
    assert not again.changed and writer.rows == {} and again.migrated == 20


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    writer = MemoryWriter()
    result = EmbeddingsCopy(
        MemoryReader([*rows(20), ("bad", None, 0)]), writer, options(tmp_path, check_mode=True)
    ).run()
    assert result.changed and result.copied_this_run == 20 and result.rejected == 1
    assert (
        writer.rows == {} and not (tmp_path / "checkpoint.json").exists() and not (tmp_path / "rejects.jsonl").exists()
    )


def test_equal_ids_without_a_unique_constraint_are_all_seen(tmp_path: Path) -> None:
    source = [("a", [1.0, 1.0, 1.0], 0)] + [("b", [2.0, 2.0, 2.0], 0)] * 9 + [("c", [3.0, 3.0, 3.0], 0)]
    result = EmbeddingsCopy(MemoryReader(source), MemoryWriter(), options(tmp_path, batch_size=4)).run()
    assert result.migrated == 3 and result.rejected_by_kind == {"duplicate_id": 1}
    assert result.read == 11


def _batch(ids: list[str]):
    import numpy as np
    from ansible.module_utils.hybrid_migration.transform import Batch

    return Batch(ids, np.ones((len(ids), DIM), dtype=np.float32), np.zeros(len(ids), dtype=np.int64))


def test_assembler_cuts_pages_into_batches_with_resume_points() -> None:
    from ansible.module_utils.hybrid_migration.embeddings_copy import BatchAssembler

    assembler = BatchAssembler(batch_size=3, dimension=DIM)
    ready = assembler.add(_batch(["a", "b", "c", "d", "e", "f", "g"]), "h", 1)  # "h" was read but rejected
    assert [(w.batch.ids, w.last_id, w.seen_at_last_id) for w in ready] == [
        (["a", "b", "c"], "c", 1),
        (["d", "e", "f"], "f", 1),
    ]
    assert assembler.add(_batch([]), "k", 1) == []  # a page of rejects moves the resume point of what is pending
    ready = assembler.add(_batch(["m", "n"]), "n", 1)
    assert [(w.batch.ids, w.last_id) for w in ready] == [(["g", "m", "n"], "n")]
    assert assembler.flush() == []


def test_assembler_joins_small_pages_into_one_batch() -> None:
    from ansible.module_utils.hybrid_migration.embeddings_copy import BatchAssembler

    assembler = BatchAssembler(batch_size=10, dimension=DIM)
    assert assembler.add(_batch(["a", "b"]), "b", 1) == []
    assert assembler.add(_batch(["c"]), "d", 1) == []
    (last,) = assembler.flush()
    assert last.batch.ids == ["a", "b", "c"] and last.batch.vectors.shape == (3, DIM) and last.last_id == "d"


def test_an_all_rejected_page_with_nothing_pending_still_advances() -> None:
    from ansible.module_utils.hybrid_migration.embeddings_copy import BatchAssembler

    (write,) = BatchAssembler(batch_size=10, dimension=DIM).add(_batch([]), "z", 2)
    assert len(write.batch) == 0 and (write.last_id, write.seen_at_last_id) == ("z", 2)


def test_small_batches_and_large_read_pages_give_the_same_result(tmp_path: Path) -> None:
    writer = MemoryWriter()
    result = EmbeddingsCopy(
        MemoryReader([*rows(95), ("bad", None, 0)]), writer, options(tmp_path, batch_size=10, read_page_size=40)
    ).run()
    assert result.migrated == 95 and len(writer.rows) == 95
    assert json.loads((tmp_path / "checkpoint.json").read_text())["batches"] == 10
