"""The run state: one JSON file in which every phase records its outcome.

Later phases read it to check their preconditions (cutover refuses without a
passing validation) and the report is built from it. It is written through a
temporary file and a rename, like the checkpoint, under an ``fcntl`` lock held
on a file beside it, so two writers (two phases started at once, or a phase and
a report) never interleave a read-modify-write.

Phase results come from registered Ansible results: Ansible's own keys are
dropped and every value under a key that names a secret is replaced, at any
depth, before anything reaches the file.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import math
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import TerminalError, TransientError

SCHEMA_VERSION = 1
RUNNING, SUCCEEDED, FAILED, SKIPPED = "running", "succeeded", "failed", "skipped"
STATUSES = (RUNNING, SUCCEEDED, FAILED, SKIPPED)
FINISHED_STATUSES = (SUCCEEDED, FAILED, SKIPPED)
MAX_EVENTS = 500
REDACTED = "********"
SECRET_KEY_MARKERS = ("password", "token", "secret", "credential")
FILE_MODE = 0o640
LOCK_TIMEOUT_SECONDS = 30.0

# Keys Ansible adds to every registered result; they say how the task ran, not what the phase found.
ANSIBLE_RESULT_KEYS = frozenset(
    {
        "invocation",
        "changed",
        "failed",
        "skipped",
        "skip_reason",
        "diff",
        "warnings",
        "deprecations",
        "exception",
        "module_stdout",
        "module_stderr",
        "ansible_facts",
        "ansible_job_id",
        "results_file",
        "started",
        "finished",
        "attempts",
    }
)
ANSIBLE_RESULT_PREFIXES = ("_ansible", "stdout", "stderr")
# user:password@ in a URI, the one place a secret hides in a value rather than under a key.
URI_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:)(?P<secret>[^\s/@]+)(?P<tail>@)")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """``2025-03-01T12:00:00.123Z``: UTC, milliseconds, sortable as text."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    """The moment an ISO-8601 text names, None for None or text that is not a time."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def is_secret_key(name: Any) -> bool:
    lowered = str(name).lower()
    return any(marker in lowered for marker in SECRET_KEY_MARKERS)


def redact(value: Any) -> Any:
    """A JSON-serialisable copy of ``value`` with every secret replaced by ``********``.

    A secret is the value of any key whose name contains password, token, secret
    or credential, at any depth, and the password part of a ``scheme://user:password@``
    URI in any text. Values JSON cannot hold become text (sets become lists, NaN
    and infinities become None).
    """
    if isinstance(value, Mapping):
        return {str(key): REDACTED if is_secret_key(key) else redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [redact(item) for item in items]
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    text = value if isinstance(value, str) else str(value)
    return URI_CREDENTIALS.sub(lambda match: f"{match['head']}{REDACTED}{match['tail']}", text)


def clean_result(result: Mapping[str, Any] | None) -> dict[str, Any]:
    """A phase's registered result as the run state keeps it: Ansible's keys dropped, secrets redacted."""
    kept = {
        key: value
        for key, value in (result or {}).items()
        if key not in ANSIBLE_RESULT_KEYS and not str(key).startswith(ANSIBLE_RESULT_PREFIXES)
    }
    return redact(kept)


def empty_state() -> dict[str, Any]:
    """The state of a run nothing has been recorded for yet; ``run_id`` is made at the first write."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": None,
        "created_at": None,
        "updated_at": None,
        "phases": {},
        "mode_changes": [],
        "events": [],
    }


def _unreadable(path: Path, reason: str) -> TerminalError:
    return TerminalError(
        f"run state {path} is unreadable ({reason}); restore it from a backup, or move it away "
        "to start a new run record (the report and the phase gates then see no phase as done)"
    )


def load_run_state(path: str | Path) -> dict[str, Any]:
    """The run state at ``path``; an empty state when the file does not exist.

    Raises:
        TerminalError: the file exists but cannot be read or is not a run state
            (the message says what to do).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return empty_state()
    except (OSError, UnicodeDecodeError) as error:
        raise _unreadable(path, str(error)) from error
    try:
        data = json.loads(text)
    except ValueError as error:
        raise _unreadable(path, f"not JSON: {error}") from error
    if not isinstance(data, dict):
        raise _unreadable(path, f"expected a JSON object, found {type(data).__name__}")
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise TerminalError(
            f"run state {path} has schema_version {version!r}; this runbook reads version {SCHEMA_VERSION}. "
            "Use the runbook version that wrote it, or move the file away to start a new run record"
        )
    state = empty_state()
    state.update(data)
    for key, kind in (("phases", dict), ("mode_changes", list), ("events", list)):
        if not isinstance(state[key], kind):
            raise _unreadable(path, f"{key} is a {type(state[key]).__name__}, expected a {kind.__name__}")
    if any(not isinstance(entry, dict) for entry in state["phases"].values()):
        raise _unreadable(path, "every entry of phases must be an object")
    return state


def save_run_state(path: str | Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` through a temporary file, fsync and rename: a crash leaves the old or the new file."""
    write_atomically(Path(path), json.dumps(state, indent=2, ensure_ascii=False) + "\n")


def write_atomically(path: Path, text: str, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new content, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def lock_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def locked(path: str | Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the exclusive lock of the run state at ``path`` (an ``fcntl`` lock on ``<path>.lock``).

    Raises:
        TransientError: another writer held the lock for ``timeout`` seconds.
    """
    target = lock_path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    descriptor = os.open(target, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as error:
                if time.monotonic() >= deadline:
                    raise TransientError(
                        f"another process has held the run state lock {target} for {timeout:.0f}s; "
                        "let the other phase finish, then run this one again"
                    ) from error
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def new_phase_entry() -> dict[str, Any]:
    return {
        "status": None,
        "started_at": None,
        "finished_at": None,
        "seconds": None,
        "attempts": 0,
        "message": "",
        "check_mode": False,
        "result": {},
    }


def _append_event(state: dict[str, Any], at: str, phase: str, status: str, message: str) -> None:
    state["events"] = [*state["events"], {"at": at, "phase": phase, "status": status, "message": message}][-MAX_EVENTS:]


def _touch(state: dict[str, Any], at: str) -> None:
    if not state.get("run_id"):
        state["run_id"] = uuid.uuid4().hex
        state["created_at"] = at
    state["updated_at"] = at


def record_phase(
    state: Mapping[str, Any],
    phase: str,
    status: str,
    message: str = "",
    result: Mapping[str, Any] | None = None,
    check_mode: bool = False,
    now: datetime | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state after recording one phase outcome, and the phase's new entry. Pure.

    ``running`` opens an attempt: started_at is now, attempts goes up by one,
    finished_at and seconds are cleared. ``succeeded``, ``failed`` and ``skipped``
    close it: finished_at is now and seconds run from the open attempt's start.
    A ``succeeded`` or ``failed`` without a ``running`` before it counts as an
    attempt whose start is unknown (no started_at, no seconds). ``result`` replaces
    the previous attempt's, after :func:`clean_result`.

    Raises:
        TerminalError: an empty phase name or an unknown status.
    """
    if not phase or not phase.strip():
        raise TerminalError("phase must be a non-empty name, such as migrate_embeddings")
    if status not in STATUSES:
        raise TerminalError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    moment = now or utc_now()
    at = iso(moment)
    updated = copy.deepcopy(dict(state))
    previous = updated["phases"].get(phase) or {}
    entry = {**new_phase_entry(), **copy.deepcopy(previous)}
    attempt_open = previous.get("status") == RUNNING
    if status == RUNNING:
        entry.update(started_at=at, finished_at=None, seconds=None, attempts=int(entry["attempts"] or 0) + 1)
    else:
        started = parse_iso(entry["started_at"]) if attempt_open else None
        if not attempt_open:
            entry["started_at"] = None
            if status != SKIPPED:
                entry["attempts"] = int(entry["attempts"] or 0) + 1
        entry.update(
            finished_at=at,
            seconds=round(max((moment - started).total_seconds(), 0.0), 3) if started else None,
        )
    entry.update(status=status, message=str(redact(message or "")), check_mode=check_mode)
    entry["result"] = clean_result(result)
    updated["phases"][phase] = entry
    _touch(updated, at)
    _append_event(updated, at, phase, status, entry["message"])
    return updated, entry


def record_mode_change(
    state: Mapping[str, Any],
    change: Mapping[str, Any],
    now: datetime | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state after appending one storage-mode change, and the change as recorded. Pure.

    Raises:
        TerminalError: ``from`` or ``to`` is missing.
    """
    source, target = change.get("from"), change.get("to")
    if not source or not target:
        raise TerminalError("mode_change needs both 'from' and 'to' (storage modes such as neo4j_only, dual_write)")
    at = iso(now or utc_now())
    recorded = {
        "from": str(source),
        "to": str(target),
        "at": at,
        "forced": bool(change.get("forced", False)),
        "message": str(redact(change.get("message") or "")),
    }
    updated = copy.deepcopy(dict(state))
    updated["mode_changes"] = [*updated["mode_changes"], recorded]
    _touch(updated, at)
    forced = " (forced)" if recorded["forced"] else ""
    _append_event(updated, at, "storage_mode", f"{source}->{target}", f"{source} -> {target}{forced}")
    return updated, recorded


def describe_run(state: Mapping[str, Any]) -> str:
    """One sentence naming what a reset would erase."""
    phases = state.get("phases") or {}
    listed = ", ".join(f"{name} ({entry.get('status')})" for name, entry in phases.items()) or "none"
    return (
        f"run {state.get('run_id') or '(no id)'} with {len(phases)} recorded phases [{listed}] "
        f"and {len(state.get('events') or [])} events"
    )


def has_records(state: Mapping[str, Any]) -> bool:
    return bool(state.get("phases") or state.get("events"))


def reset_state(state: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """A new run: new run_id, no phases, no events. Pure.

    Storage-mode changes are kept: they describe the engine, which stays in the
    mode it is in whatever the run record says.
    """
    at = iso(now or utc_now())
    fresh = empty_state()
    fresh["mode_changes"] = copy.deepcopy(list(state.get("mode_changes") or []))
    _touch(fresh, at)
    _append_event(fresh, at, "run", "reset", f"new run; replaced {describe_run(state)}")
    return fresh


@dataclass
class Outcome:
    """What a run-state call did (in check mode, would do)."""

    changed: bool
    run_id: str | None
    entry: dict[str, Any] | None = None
    before: dict[str, Any] | None = None
    mode_change: dict[str, Any] | None = None
    message: str = ""
    erased: str = ""
    state: dict[str, Any] = field(default_factory=dict)


def record(
    path: str | Path,
    phase: str | None = None,
    status: str | None = None,
    message: str = "",
    result: Mapping[str, Any] | None = None,
    mode_change: Mapping[str, Any] | None = None,
    check_mode: bool = False,
    clock: Clock = utc_now,
) -> Outcome:
    """Record a phase outcome and/or a storage-mode change in the file at ``path``, under its lock.

    Check mode reads the file and returns the entry it would write; it writes
    nothing, not even the lock file.

    Raises:
        TerminalError: nothing to record, a bad phase or status, or an unreadable file.
        TransientError: another writer held the lock too long.
    """
    if phase is None and not mode_change:
        raise TerminalError("give a phase and its status, or a mode_change, to record")
    if (phase is None) != (status is None):
        raise TerminalError("phase and status go together")
    with contextlib.nullcontext() if check_mode else locked(path):
        state = load_run_state(path)
        before = copy.deepcopy(state["phases"].get(phase)) if phase else None
        entry = recorded_change = None
        moment = clock()
        if phase is not None and status is not None:
            state, entry = record_phase(state, phase, status, message, result, check_mode, moment)
        if mode_change:
            state, recorded_change = record_mode_change(state, mode_change, moment)
        if not check_mode:
            save_run_state(path, state)
    return Outcome(True, state["run_id"], entry, before, recorded_change, state=state)


def reset(path: str | Path, confirm: bool, check_mode: bool = False, clock: Clock = utc_now) -> Outcome:
    """Start a new run record at ``path``; erasing recorded phases needs ``confirm``.

    A file with nothing recorded is left alone (changed false). A file that cannot be
    read is replaced when confirmed.

    Raises:
        TerminalError: phases or events are recorded (or the file is unreadable) and
            ``confirm`` is false; the message says what would be erased.
        TransientError: another writer held the lock too long.
    """
    with contextlib.nullcontext() if check_mode else locked(path):
        try:
            state = load_run_state(path)
            erased = describe_run(state)
        except TerminalError as error:
            if not confirm:
                raise TerminalError(f"{error}. state=reset with confirm_reset=true replaces it") from error
            state, erased = empty_state(), f"the unreadable file {path}"
        else:
            if not has_records(state):
                return Outcome(False, state["run_id"], message="nothing recorded; nothing to reset", state=state)
            if not confirm:
                raise TerminalError(
                    f"state=reset would erase {erased} from {path}; set confirm_reset=true to start a new run "
                    "(storage-mode changes are kept)"
                )
        fresh = reset_state(state, clock())
        if not check_mode:
            save_run_state(path, fresh)
    message = f"new run {fresh['run_id']}; erased {erased}"
    return Outcome(True, fresh["run_id"], message=message, erased=erased, state=fresh)
