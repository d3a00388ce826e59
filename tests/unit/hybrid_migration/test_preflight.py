from __future__ import annotations

import pytest
from ansible.module_utils.hybrid_migration import preflight
from ansible.module_utils.hybrid_migration.errors import TransientError
from ansible.module_utils.hybrid_migration.preflight import (
    FAILED,
    PASSED,
    SKIPPED,
    WARNING,
    Check,
    Preflight,
    PreflightOptions,
    PreflightReport,
    describe_dimensions,
    judge_dimensions,
    version_tuple,
)
from ansible.module_utils.hybrid_migration.settings import (
    MilvusSettings,
    Neo4jSettings,
    PostgresSettings,
    RedisSettings,
    SourceModel,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5.26.19", (5, 26, 19)), ("v2.3.5-lite", (2, 3, 5)), ("15.20 (Debian)", (15, 20)), ("5.13", (5, 13))],
)
def test_version_tuple(text: str, expected: tuple[int, ...]) -> None:
    assert version_tuple(text) == expected


def test_version_comparison_is_numeric() -> None:
    assert version_tuple("5.9") < version_tuple("5.13")


def test_describe_dimensions_most_common_first() -> None:
    assert describe_dimensions({767: 1, 768: 20000, 0: 1}) == "768-d (20000), 0-d (1), 767-d (1)"


def test_uniform_dimensions_pass() -> None:
    status, sentence, dimension = judge_dimensions({768: 100}, None, 0.001)
    assert (status, dimension) == (PASSED, 768)
    assert "all 100" in sentence


def test_a_few_odd_dimensions_warn() -> None:
    status, sentence, dimension = judge_dimensions({768: 20000, 767: 1}, None, 0.001)
    assert (status, dimension) == (WARNING, 768)
    assert "767-d (1)" in sentence and "reject" in sentence


def test_many_odd_dimensions_fail_with_the_share() -> None:
    status, sentence, _ = judge_dimensions({768: 90, 512: 10}, None, 0.001)
    assert status == FAILED
    assert "10.00%" in sentence and "0.10% allowed" in sentence


def test_expected_dimension_overrides_the_majority() -> None:
    status, sentence, dimension = judge_dimensions({768: 100}, 512, 0.5)
    assert (status, dimension) == (FAILED, 512)
    assert "are not 512-d" in sentence


def test_no_numeric_embeddings_fail() -> None:
    assert judge_dimensions({}, None, 0.001)[0] == FAILED


def test_report_passes_with_warnings_and_fails_on_one_failure() -> None:
    report = PreflightReport([Check("a", PASSED, "fine"), Check("b", WARNING, "hm")], {})
    assert report.passed and report.failures == []
    report.checks.append(Check("c", FAILED, "broken"))
    assert not report.passed
    assert report.failures == ["c: broken"]
    lines = report.summary_lines()
    assert lines[0] == "PREFLIGHT FAILED - 1 passed, 1 warning, 1 failed"
    assert any(line.startswith("[FAIL] c") for line in lines)


def _preflight(options: PreflightOptions) -> Preflight:
    return Preflight(
        Neo4jSettings(password="x"),
        MilvusSettings(),
        PostgresSettings(password="x"),
        RedisSettings(),
        SourceModel(),
        options,
    )


def test_without_connectivity_only_local_checks_run(tmp_path) -> None:
    report = _preflight(PreflightOptions(check_connectivity=False, disk_paths=(str(tmp_path),))).run()
    statuses = {check.name: check.status for check in report.checks}
    assert statuses["neo4j"] == SKIPPED and statuses["milvus"] == SKIPPED
    assert statuses["disk"] == PASSED and statuses["memory"] == PASSED
    assert report.passed


def test_a_failing_check_does_not_hide_the_others(tmp_path) -> None:
    class Broken(Preflight):
        def check_neo4j(self) -> Check:
            raise TransientError("Neo4j unreachable at bolt://nowhere")

        def check_milvus(self) -> Check:
            raise RuntimeError("surprise")

        def check_postgres(self) -> Check:
            return Check("postgres", PASSED, "fine")

        def check_redis(self) -> Check:
            return Check("redis", PASSED, "fine")

    broken = Broken(
        Neo4jSettings(password="x"),
        MilvusSettings(),
        PostgresSettings(password="x"),
        RedisSettings(),
        SourceModel(),
        PreflightOptions(disk_paths=(str(tmp_path),)),
    )
    report = broken.run()
    statuses = {check.name: check.status for check in report.checks}
    assert statuses["neo4j"] == FAILED
    assert statuses["embeddings"] == FAILED  # needs Neo4j, says so
    assert statuses["milvus"] == FAILED
    assert statuses["postgres"] == PASSED and statuses["redis"] == PASSED
    assert "neo4j: Neo4j unreachable at bolt://nowhere" in report.failures
    assert any("unexpected RuntimeError: surprise" in failure for failure in report.failures)


def test_disk_check_fails_when_the_factor_cannot_fit(tmp_path) -> None:
    checker = _preflight(PreflightOptions(disk_paths=(str(tmp_path / "not" / "yet"),), disk_factor=3.0))
    checker.facts["embedding_bytes"] = 10**18
    check = checker.check_disk()
    assert check.status == FAILED
    assert "too little disk" in check.summary and "3x the embedding bytes" in check.summary


def test_memory_check_fails_when_the_batch_cannot_fit(monkeypatch) -> None:
    class Tiny:
        available = 64 * 1024 * 1024

    monkeypatch.setattr(preflight.psutil, "virtual_memory", lambda: Tiny())
    check = _preflight(PreflightOptions(batch_size=5000, concurrency=8)).check_memory()
    assert check.status == FAILED
    assert "only 64.0 MiB available" in check.summary and "batch_size 5000" in check.summary
