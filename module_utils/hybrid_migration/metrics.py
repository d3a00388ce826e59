"""Progress metrics pushed to a Prometheus Pushgateway while a batch job runs.

A background thread pushes every few seconds, so Grafana and the monitor
playbook see progress even when a job runs under ``async``. A Pushgateway that
is down never fails the job: failed pushes are counted and reported.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class MetricsPusher:
    """Holds the job's gauges and pushes them on a timer and at the end."""

    def __init__(
        self, url: str | None, job: str, interval: float = 5.0, grouping: dict[str, str] | None = None
    ) -> None:
        from prometheus_client import CollectorRegistry, Gauge

        self.url = url
        self.job = job
        self.interval = interval
        self.grouping = grouping or {}
        self.registry = CollectorRegistry()
        self.gauges: dict[str, Any] = {}
        for name, text in (
            ("migration_migrated_items", "Items copied to the target so far"),
            ("migration_total_items", "Items in the source"),
            ("migration_errors_total", "Items rejected or failed so far"),
            ("migration_rejected_items", "Items rejected with a reason in the reject file"),
            ("migration_items_per_second", "Copy rate over the run so far"),
            ("migration_eta_seconds", "Estimated seconds until the copy ends"),
            ("migration_retries_total", "Transient failures retried"),
            ("migration_last_success_timestamp_seconds", "When progress was last made"),
            ("migration_running", "1 while the job runs, 0 after it ended"),
        ):
            self.gauges[name] = Gauge(name, text, registry=self.registry)
        self.push_failures = 0
        self.last_push_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set(self, **values: float) -> None:
        for name, value in values.items():
            self.gauges[name].set(value)

    def push(self) -> None:
        if not self.url:
            return
        from prometheus_client import push_to_gateway

        try:
            push_to_gateway(self.url, job=self.job, registry=self.registry, grouping_key=self.grouping, timeout=5)
        except Exception as error:  # monitoring must never stop the migration
            self.push_failures += 1
            self.last_push_error = str(error)

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self.set(migration_running=1)
        self.push()
        self._thread = threading.Thread(target=self._loop, name="metrics-push", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.push()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        self.set(migration_running=0)
        self.push()


def push_once(url: str, job: str, gauges: dict[str, tuple[str, float]]) -> str | None:
    """Push a few gauges once (a phase's outcome, such as the validation success rate).

    Returns the error text when the push failed; monitoring never fails the phase.
    """
    if not url:
        return None
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    registry = CollectorRegistry()
    for name, (text, value) in gauges.items():
        Gauge(name, text, registry=registry).set(value)
    try:
        push_to_gateway(url, job=job, registry=registry, timeout=5)
    except Exception as error:  # monitoring must never stop the migration
        return str(error)
    return None


class Rate:
    """Items per second since the start, and the ETA for the rest."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def per_second(self, done: int) -> float:
        elapsed = time.monotonic() - self.started
        return done / elapsed if elapsed > 0 else 0.0

    def eta(self, done: int, total: int) -> float:
        rate = self.per_second(done)
        return max(total - done, 0) / rate if rate > 0 else 0.0
