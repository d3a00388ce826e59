"""The reject file: one JSON line per item that cannot move, with its reason.

Shared by the embedding copy (items named by ``id``) and the AgentDB copy
(items named by Redis ``key``). Each (item, kind) is written once across
resumes, so counts stay true when a run is repeated.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Protocol


class Rejected(Protocol):
    """What the log needs of a rejected item."""

    id: str
    kind: str

    def as_json(self) -> str: ...


class RejectLog:
    """The reject file: one JSON line per rejected row, each (id, kind) once across resumes."""

    def __init__(self, path: Path, fresh: bool, check_mode: bool) -> None:
        self.path = path
        self.check_mode = check_mode
        self.keys: set[tuple[str, str]] = set()
        self.by_kind: Counter[str] = Counter()
        self._handle = None
        if not fresh and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                self._remember(entry.get("id", entry.get("key", "")), entry.get("kind", ""))
        if not check_mode:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = path.open("w" if fresh else "a", encoding="utf-8")

    def _remember(self, item_id: str, kind: str) -> bool:
        key = (item_id, kind)
        if key in self.keys:
            return False
        self.keys.add(key)
        self.by_kind[kind] += 1
        return True

    def add(self, reject: "Rejected") -> None:
        if self._remember(reject.id, reject.kind) and self._handle:
            self._handle.write(reject.as_json() + "\n")

    def flush(self) -> None:
        if self._handle:
            self._handle.flush()

    def close(self) -> None:
        if self._handle:
            self._handle.close()

    @property
    def count(self) -> int:
        return len(self.keys)
