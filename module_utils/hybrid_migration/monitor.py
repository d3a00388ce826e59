"""Progress of a running copy, read from its checkpoint, the Pushgateway and the run state.

The monitor playbook prints one line per interval from ``snapshot`` until
``Progress.finished``. Every source is optional: a Pushgateway that is down
or a checkpoint not written yet makes a line with less in it, never an error.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOB_NAMES = ("migrate_embeddings", "migrate_agentdb")


def monitor_argument_spec() -> dict[str, Any]:
    """Options of the migration_monitor action (its documentation lives in library/)."""
    return {
        "job": {"type": "str", "default": "migrate_embeddings", "choices": list(JOB_NAMES)},
        "interval_secs": {"type": "float", "default": 5.0},
        "checkpoint_file": {"type": "path"},
        "pushgateway_url": {"type": "str", "default": ""},
        "run_state_file": {"type": "path"},
        "async_job_id": {"type": "str"},
        "wait_for_start_seconds": {"type": "float", "default": 60.0},
        "max_seconds": {"type": "float", "default": 86400.0},
    }


@dataclass
class Progress:
    job: str
    phase: str = ""
    phase_status: str = ""
    migrated: int | None = None
    total: int | None = None
    items_per_second: float | None = None
    eta_seconds: float | None = None
    running: bool | None = None
    checkpoint_complete: bool = False
    checkpoint_updated_at: str = ""
    async_finished: bool | None = None
    async_failed: bool = False
    sources: tuple[str, ...] = ()

    @property
    def percent(self) -> float | None:
        if self.migrated is None or not self.total:
            return None
        return min(100.0, 100.0 * self.migrated / self.total)

    @property
    def finished(self) -> bool:
        """The copy ended: its async job finished, its checkpoint is complete, or it stopped pushing 'running'."""
        if self.async_finished is not None:
            return self.async_finished
        return self.checkpoint_complete or self.running is False


def parse_pushgateway(text: str, job: str) -> dict[str, float]:
    """The job's migration_* gauges from the Pushgateway's /metrics page."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("migration_") or f'job="{job}"' not in line:
            continue
        name = line.split("{", 1)[0]
        try:
            values[name] = float(line.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            continue
    return values


def read_pushgateway(url: str, job: str, timeout: float = 5.0) -> dict[str, float] | None:
    if not url:
        return None
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=timeout) as response:  # noqa: S310
            return parse_pushgateway(response.read().decode("utf-8", "replace"), job)
    except (OSError, ValueError):
        return None


def read_json(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def checkpoint_counts(job: str, checkpoint: dict[str, Any]) -> tuple[int | None, int | None]:
    """Migrated and total items as the checkpoint of each copy records them."""
    if job == "migrate_agentdb":
        loaded = checkpoint.get("loaded") or {}
        return int(loaded.get("experiences", 0)) + int(checkpoint.get("agents_done", 0)), None
    return checkpoint.get("migrated"), checkpoint.get("total") or None


def snapshot(
    job: str,
    checkpoint_file: Path | None,
    pushgateway_url: str,
    run_state_file: Path | None,
    async_results_file: Path | None = None,
) -> Progress:
    progress = Progress(job=job)
    sources = []
    metrics = read_pushgateway(pushgateway_url, job)
    if metrics:
        sources.append("pushgateway")
        if "migration_migrated_items" in metrics:
            progress.migrated = int(metrics["migration_migrated_items"])
        if metrics.get("migration_total_items"):
            progress.total = int(metrics["migration_total_items"])
        progress.items_per_second = metrics.get("migration_items_per_second")
        progress.eta_seconds = metrics.get("migration_eta_seconds")
        if "migration_running" in metrics:
            progress.running = metrics["migration_running"] == 1
    checkpoint = read_json(checkpoint_file)
    if checkpoint:
        sources.append("checkpoint")
        migrated, total = checkpoint_counts(job, checkpoint)
        if progress.migrated is None:
            progress.migrated = migrated
        if progress.total is None:
            progress.total = total
        progress.checkpoint_complete = bool(checkpoint.get("complete"))
        progress.checkpoint_updated_at = str(checkpoint.get("updated_at") or "")
    state = read_json(run_state_file)
    if state:
        phases = state.get("phases") or {}
        running = [name for name, phase in phases.items() if (phase or {}).get("status") == "running"]
        if running:
            progress.phase, progress.phase_status = running[-1], "running"
        elif job in phases:
            progress.phase, progress.phase_status = job, str((phases[job] or {}).get("status", ""))
    if async_results_file is not None:
        # async_wrapper writes {"started": 1, "finished": 0} first, then the module's own result (no "started")
        results = read_json(async_results_file)
        progress.async_finished = bool(results) and (bool(results.get("finished")) or "started" not in results)
        progress.async_failed = bool(results and results.get("failed"))
        if results is not None:
            sources.append("async job")
    progress.sources = tuple(sources)
    return progress


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(round(seconds), 3600)
    minutes, rest = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{rest:02d}s"
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def render(progress: Progress, now: float | None = None) -> str:
    """One line: time, job, phase, percent, migrated / total, rate and ETA."""
    stamp = time.strftime("%H:%M:%S", time.gmtime(now if now is not None else time.time()))
    percent = f"{progress.percent:.1f}%" if progress.percent is not None else "-%"
    migrated = f"{progress.migrated:,}" if progress.migrated is not None else "-"
    total = f"{progress.total:,}" if progress.total else "-"
    rate = f"{progress.items_per_second:,.0f} items/s" if progress.items_per_second is not None else "- items/s"
    phase = f"phase {progress.phase} {progress.phase_status}" if progress.phase else "no phase recorded"
    state = "finished" if progress.finished else "running" if progress.running else "waiting"
    return (
        f"[{stamp} UTC] {progress.job}: {percent} ({migrated} / {total}), {rate}, "
        f"ETA {duration(progress.eta_seconds)}; {phase}; {state}"
    )
