"""The copy's checkpoint: where to resume, written atomically after each batch.

Same JSON shape as the seed's ``/tmp/migration_checkpoint.json`` (``last_id``,
counts, timestamps) plus what resuming needs. Batches finish out of order when
several writers run, so the checkpoint only advances to the highest id below
which every batch is acknowledged (the ``Watermark``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from .errors import TerminalError
from .run_state import write_atomically


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


S = TypeVar("S", bound="CheckpointFile")


class CheckpointFile:
    """Load and save for a checkpoint dataclass: keys it does not know are ignored, writes are atomic."""

    updated_at: str

    @classmethod
    def load(cls: type[S], path: Path) -> S | None:
        """The checkpoint at ``path``, None when there is none.

        Raises:
            TerminalError: the file exists but is not a checkpoint.
        """
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
            known = {f.name for f in fields(cls)}
            return cls(**{key: value for key, value in data.items() if key in known})
        except (ValueError, TypeError) as error:
            raise TerminalError(
                f"checkpoint {path} is unreadable ({error}); move it away or run with fresh_start=true"
            ) from error

    def save(self, path: Path) -> None:
        """Replace the file whole, so a crash leaves the old or the new checkpoint."""
        self.updated_at = now_iso()
        write_atomically(path, json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", mode=0o644)


@dataclass
class Checkpoint(CheckpointFile):
    """Progress of one copy; ``last_id`` is the resume point among string ids."""

    last_id: str | None = None
    seen_at_last_id: int = 0
    migrated: int = 0
    rejected: int = 0
    total: int = 0
    started_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    started_at_epoch_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    string_ids_done: bool = False
    other_ids_migrated: int = 0
    complete: bool = False
    finished_at: str | None = None
    collection: str = ""
    batches: int = 0
    caught_up_to_epoch_ms: int = 0


@dataclass
class BatchMark:
    """Where a batch ends in the read order and what it carried."""

    sequence: int
    last_id: str | None
    seen_at_last_id: int
    migrated: int


class Watermark:
    """Tracks acknowledged batches; advances only over a gap-free prefix."""

    def __init__(self) -> None:
        self._next = 0
        self._done: dict[int, BatchMark] = {}

    def acknowledge(self, mark: BatchMark) -> list[BatchMark]:
        """Record one finished batch; return the batches the checkpoint may now pass."""
        self._done[mark.sequence] = mark
        advanced = []
        while self._next in self._done:
            advanced.append(self._done.pop(self._next))
            self._next += 1
        return advanced

    @property
    def pending(self) -> int:
        return len(self._done)


def resume_point(checkpoint: Checkpoint | None, resume_from: str | None, fresh_start: bool) -> dict[str, Any]:
    """Where a run starts: a given id, the checkpoint, or the beginning."""
    if resume_from:
        return {"last_id": resume_from, "seen_at_last_id": 1, "source": f"resume_from={resume_from}"}
    if checkpoint and not fresh_start and checkpoint.last_id is not None:
        return {
            "last_id": checkpoint.last_id,
            "seen_at_last_id": checkpoint.seen_at_last_id,
            "source": f"checkpoint (last_id={checkpoint.last_id})",
        }
    return {"last_id": "", "seen_at_last_id": 0, "source": "beginning"}
