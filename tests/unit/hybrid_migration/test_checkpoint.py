from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible.module_utils.hybrid_migration.checkpoint import BatchMark, Checkpoint, Watermark, resume_point
from ansible.module_utils.hybrid_migration.errors import TerminalError


def test_save_and_load_round_trip_with_the_seed_fields(tmp_path: Path) -> None:
    path = tmp_path / "state" / "checkpoint.json"
    checkpoint = Checkpoint(last_id='m-"7"', migrated=10, rejected=1, total=12)
    checkpoint.save(path)
    data = json.loads(path.read_text())
    assert {"last_id", "migrated", "rejected", "total", "started_at", "updated_at"} <= set(data)
    assert Checkpoint.load(path) == checkpoint
    assert list(tmp_path.glob("state/.*tmp")) == []


def test_a_missing_checkpoint_is_none_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    assert Checkpoint.load(tmp_path / "none.json") is None
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(TerminalError, match="fresh_start=true"):
        Checkpoint.load(broken)


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"last_id": "x", "from_the_seed": 1}))
    assert Checkpoint.load(path).last_id == "x"


def mark(sequence: int) -> BatchMark:
    return BatchMark(sequence, f"id-{sequence}", 1, 10)


def test_watermark_advances_only_over_a_gap_free_prefix() -> None:
    watermark = Watermark()
    assert watermark.acknowledge(mark(1)) == []
    assert watermark.acknowledge(mark(2)) == []
    assert [m.sequence for m in watermark.acknowledge(mark(0))] == [0, 1, 2]
    assert watermark.acknowledge(mark(4)) == [] and watermark.pending == 1
    assert [m.sequence for m in watermark.acknowledge(mark(3))] == [3, 4]


def test_resume_point_prefers_an_explicit_id_then_the_checkpoint() -> None:
    checkpoint = Checkpoint(last_id="m-5", seen_at_last_id=1)
    assert resume_point(checkpoint, "m-9", False)["last_id"] == "m-9"
    assert resume_point(checkpoint, None, False)["last_id"] == "m-5"
    assert resume_point(checkpoint, None, True) == {"last_id": "", "seen_at_last_id": 0, "source": "beginning"}
    assert resume_point(None, None, False)["source"] == "beginning"
