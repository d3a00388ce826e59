"""Asking engine instances over HTTP, and reading their Prometheus metrics.

Gates, the latency report and mode flips all talk to the engines the same way: a short
timeout, an error that names the instance, and metrics summed across the fleet.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .errors import TransientError

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(url: str, timeout: float) -> tuple[int, bytes]:
    """GET ``url``; HTTP error statuses are returned, unreachable servers raise.

    Raises:
        TransientError: the instance did not answer.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - engine URLs from inventory
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        raise TransientError(f"engine at {url} did not answer: {error}") from error


def get_json(url: str, timeout: float) -> tuple[int, Any]:
    status, body = get(url, timeout)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"error": body[:200].decode("utf-8", "replace")}


def similar_url(address: str, item_id: str, k: int = 10) -> str:
    return f"{address.rstrip('/')}/media/{quote(item_id, safe='')}/similar?k={k}"


def parse_metrics(text: str) -> Series:
    """Every sample of a Prometheus text exposition, keyed by name and sorted labels."""
    from prometheus_client.parser import text_string_to_metric_families

    series: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return series


def scrape(address: str, timeout: float) -> Series:
    """The metrics of one instance.

    Raises:
        TransientError: it did not answer, or not with metrics.
    """
    status, body = get(f"{address.rstrip('/')}/metrics", timeout)
    if status != 200:
        raise TransientError(f"engine at {address} answered /metrics with HTTP {status}")
    return parse_metrics(body.decode("utf-8"))


def fleet_sum(instances: list[Series]) -> Series:
    """Samples summed across instances (counters and histogram buckets add up)."""
    total: Series = defaultdict(float)
    for series in instances:
        for key, value in series.items():
            total[key] += value
    return dict(total)


def value(series: Series, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (sample, sample_labels), v in series.items() if sample == name and wanted <= set(sample_labels))


def difference(later: Series, earlier: Series) -> Series:
    """Per-sample increase; a sample that went down (an instance restarted) counts from zero."""
    result: Series = {}
    for key, current in later.items():
        before = earlier.get(key, 0.0)
        result[key] = current - before if current >= before else current
    return result


@dataclass
class Histogram:
    """Cumulative buckets of one histogram, and its count and sum."""

    buckets: list[tuple[float, float]] = field(default_factory=list)
    count: float = 0.0
    total: float = 0.0

    @classmethod
    def from_series(cls, series: Series, name: str) -> "Histogram":
        buckets: dict[float, float] = defaultdict(float)
        for (sample, labels), v in series.items():
            if sample == f"{name}_bucket":
                buckets[float(dict(labels)["le"])] += v
        return cls(sorted(buckets.items()), value(series, f"{name}_count"), value(series, f"{name}_sum"))

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def quantile(self, share: float) -> float | None:
        """Linear interpolation inside the bucket, as Prometheus's histogram_quantile does."""
        if not self.count or not self.buckets:
            return None
        rank = share * self.count
        lower_bound, lower_count = 0.0, 0.0
        for index, (bound, cumulative) in enumerate(self.buckets):
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower_bound
                if index == 0 and bound <= 0:
                    return bound  # as Prometheus: no lower edge to interpolate from
                inside = cumulative - lower_count
                return lower_bound + (bound - lower_bound) * ((rank - lower_count) / inside if inside else 1.0)
            lower_bound, lower_count = bound, cumulative
        return lower_bound
