"""The engine's Prometheus metrics (names from MISSION.md, plus what the gates and the dashboard read)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from hybrid_migration.engine_control import MODES

LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
OVERLAP_BUCKETS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class EngineMetrics:
    """One registry per engine instance, so tests can run several in one process."""

    def __init__(self, instance_id: str) -> None:
        self.registry = CollectorRegistry()
        self.instance_id = instance_id
        registry = self.registry
        self.requests = Counter(
            "engine_requests",
            "HTTP requests served, by endpoint and status.",
            ["endpoint", "status"],
            registry=registry,
        )
        self.request_latency = Histogram(
            "engine_request_latency_ms",
            "Time to answer a request.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS_MS,
            registry=registry,
        )
        self.neo4j_search_latency = Histogram(
            "neo4j_search_latency_ms", "Vector search answered by Neo4j.", buckets=LATENCY_BUCKETS_MS, registry=registry
        )
        self.milvus_search_latency = Histogram(
            "milvus_search_latency_ms",
            "Vector search answered by Milvus (hybrid or shadow).",
            buckets=LATENCY_BUCKETS_MS,
            registry=registry,
        )
        self.neo4j_search_errors = Counter("neo4j_search_errors", "Neo4j searches that failed.", registry=registry)
        self.milvus_search_errors = Counter(
            "milvus_search_errors", "Milvus searches that failed (shadow or hybrid).", registry=registry
        )
        self.hybrid_fallbacks = Counter(
            "hybrid_neo4j_fallbacks", "Hybrid searches answered by Neo4j because Milvus failed.", registry=registry
        )
        self.dual_write_attempts = Counter(
            "dual_write_attempts", "Writes that were also sent to Milvus.", registry=registry
        )
        self.dual_write_success = Counter(
            "dual_write_success", "Milvus shadow writes that succeeded at once.", registry=registry
        )
        self.dual_write_milvus_errors = Counter(
            "dual_write_milvus_errors",
            "Milvus shadow writes that failed and were queued for repair.",
            registry=registry,
        )
        self.repair_queue_size = Gauge(
            "dual_write_repair_queue_size", "Ids waiting to be re-written to Milvus.", registry=registry
        )
        self.repaired = Counter(
            "dual_write_repaired", "Queued ids re-written to Milvus from Neo4j's current value.", registry=registry
        )
        self.shadow_comparisons = Counter(
            "shadow_comparisons", "Searches answered by both stores and compared.", registry=registry
        )
        self.shadow_overlap = Histogram(
            "shadow_top_k_overlap",
            "Share of Neo4j's top-k ids that Milvus also returned.",
            buckets=OVERLAP_BUCKETS,
            registry=registry,
        )
        self.shadow_latency_delta = Histogram(
            "shadow_latency_difference_ms",
            "Milvus latency minus Neo4j latency for the same query.",
            buckets=(-100, -50, -20, -10, -5, -2, 0, 2, 5, 10, 20, 50, 100),
            registry=registry,
        )
        # The cutover gates judge the current dual-write period and shadow phase, not the instance's
        # whole life: an outage during an earlier, rolled-back attempt must not block a later cutover.
        self.period_dual_write_attempts = Gauge(
            "dual_write_period_attempts",
            "Writes also sent to Milvus since this instance last started writing to Milvus.",
            registry=registry,
        )
        self.period_dual_write_milvus_errors = Gauge(
            "dual_write_period_milvus_errors",
            "Milvus shadow writes that failed since this instance last started writing to Milvus.",
            registry=registry,
        )
        self.period_shadow_comparisons = Gauge(
            "shadow_period_comparisons",
            "Shadow comparisons since this instance last entered shadow.",
            registry=registry,
        )
        self.period_shadow_overlap_sum = Gauge(
            "shadow_period_top_k_overlap_sum",
            "Sum of the top-k overlaps of those comparisons (divide by the count for the mean).",
            registry=registry,
        )
        self.storage_mode = Gauge(
            "engine_storage_mode", "1 for the storage mode this instance serves.", ["mode"], registry=registry
        )
        self.mode_generation = Gauge(
            "engine_mode_generation", "Generation of the control record this instance serves.", registry=registry
        )
        self.mode_changes = Counter("engine_mode_changes", "Storage-mode changes applied.", registry=registry)
        for mode in MODES:
            self.storage_mode.labels(mode=mode).set(0)

    def start_dual_write_period(self) -> None:
        self.period_dual_write_attempts.set(0)
        self.period_dual_write_milvus_errors.set(0)

    def start_shadow_period(self) -> None:
        self.period_shadow_comparisons.set(0)
        self.period_shadow_overlap_sum.set(0)

    def serve_mode(self, mode: str, generation: int) -> None:
        for name in MODES:
            self.storage_mode.labels(mode=name).set(1 if name == mode else 0)
        self.mode_generation.set(generation)
        self.mode_changes.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
