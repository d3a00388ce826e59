"""migration_preflight against the real servers: each failure kind gives its own reason."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import CONNECTIONS, SANDBOX, SECRETS, run_module, run_playbook, stats, task_results

SMALL_SEED_ODD_DIMENSIONS = ("-e", "preflight_max_mixed_dimension_ratio=0.01")


def preflight_args(**overrides) -> dict:
    return {
        **CONNECTIONS,
        "source": "{{ neo4j_source }}",
        "disk_paths": [str(SANDBOX)],
        "fail_on_failed_checks": False,
        # the small seed has 2 odd dimensions in about 1000: 0.2%, above the default 0.1%
        "max_mixed_dimension_ratio": 0.01,
        **overrides,
    }


def checks_of(result: dict) -> dict[str, dict]:
    return {check["name"]: check for check in result["checks"]}


def test_passes_on_the_seeded_sandbox_with_facts(small_seed) -> None:
    result = run_module("migration_preflight", preflight_args())
    assert result["passed"], result["failures"]
    assert not result["changed"]
    facts = result["facts"]
    assert facts["neo4j_version"].startswith("5.26") and facts["neo4j_edition"] == "community"
    assert facts["milvus_version"].startswith("v2.3.5")
    assert facts["postgres_version"].startswith("15")
    assert facts["redis_version"].startswith("7")
    assert facts["dimension"] == 768 and facts["metric"] == "COSINE"
    # 1000 media + 5 tricky + 9 bad ones that still hold a numeric list (wrong dims, NaN, Inf, id problems)
    assert facts["embedding_count"] == 1000 + 5 + 9
    assert facts["missing_embedding"] == 1 and facts["not_numeric_embedding"] == 2
    assert facts["dimensions"] == {"768": 1012, "767": 1, "0": 1}
    assert facts["agent_count"] == 5 + 6
    assert facts["copy_estimate"]["read_rate_items_per_second"] > 0
    assert facts["embedding_bytes"] == 1012 * 768 * 4
    statuses = {name: check["status"] for name, check in checks_of(result).items()}
    assert statuses["embeddings"] == "warning"  # the bad records are reported, not hidden
    assert "767-d (1)" in checks_of(result)["embeddings"]["summary"]


def test_check_mode_gives_the_same_answer(small_seed) -> None:
    normal = run_module("migration_preflight", preflight_args(sample_size=10))
    checked = run_module("migration_preflight", preflight_args(sample_size=10), check=True)
    assert [c["status"] for c in normal["checks"]] == [c["status"] for c in checked["checks"]]
    assert not checked["changed"]


def test_mixed_dimensions_above_the_allowed_share_fail(small_seed) -> None:
    result = run_module("migration_preflight", preflight_args(max_mixed_dimension_ratio=0.001))
    check = checks_of(result)["embeddings"]
    assert check["status"] == "failed"
    assert "2 of 1014 (0.20%) are not 768-d, above the 0.10% allowed" in check["summary"]


def test_no_embeddings_under_the_label(small_seed) -> None:
    result = run_module("migration_preflight", preflight_args(source={"label": "Genre"}))
    assert "no embeddings under label :Genre" in checks_of(result)["embeddings"]["summary"]
    result = run_module("migration_preflight", preflight_args(source={"label": "Nothing"}))
    assert checks_of(result)["embeddings"]["summary"] == "no nodes with label :Nothing"


@pytest.mark.parametrize(
    ("server", "override", "expected"),
    [
        ("neo4j", {"uri": "bolt://127.0.0.1:7699", "connect_timeout": 2}, "Neo4j unreachable at bolt://127.0.0.1:7699"),
        ("neo4j", {"password": "wrong-password"}, "rejected the credentials of user 'neo4j' (wrong password?)"),
        ("milvus", {"uri": "http://127.0.0.1:19599", "timeout": 2}, "Milvus unreachable at http://127.0.0.1:19599"),
        ("postgres", {"port": 5499, "connect_timeout": 2}, "PostgreSQL at 127.0.0.1:5499 unreachable"),
        ("postgres", {"password": "wrong-password"}, "rejected the credentials of role 'migration' (wrong password?)"),
        ("redis", {"port": 6399, "connect_timeout": 2}, "Redis at 127.0.0.1:6399 unreachable"),
        ("redis", {"password": "wrong-password"}, "rejected the credentials (wrong password?)"),
    ],
)
def test_each_server_problem_has_its_own_reason(small_seed, server: str, override: dict, expected: str) -> None:
    connection = f"{{{{ {server}_connection | combine({json.dumps(override)}) }}}}"
    result = run_module("migration_preflight", preflight_args(**{server: connection}, sample_size=10))
    assert not result["passed"]
    assert any(expected in failure for failure in result["failures"]), result["failures"]
    others = {"neo4j", "milvus", "postgres", "redis"} - {server}
    statuses = {name: check["status"] for name, check in checks_of(result).items()}
    assert all(statuses[name] == "passed" for name in others), statuses
    assert "wrong-password" not in json.dumps(result)


def test_failed_checks_fail_the_module_by_default(small_seed) -> None:
    override = '{{ neo4j_connection | combine({"uri": "bolt://127.0.0.1:7699", "connect_timeout": 2}) }}'
    result = run_module("migration_preflight", preflight_args(neo4j=override, fail_on_failed_checks=True))
    assert result["failed"]
    assert result["msg"].startswith("preflight failed: neo4j: Neo4j unreachable")


@pytest.fixture()
def tiny_disk(tmp_path: Path):
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs here: {done.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_too_little_disk_fails_with_sizes(small_seed, tiny_disk: Path) -> None:
    result = run_module("migration_preflight", preflight_args(disk_paths=[str(tiny_disk)], sample_size=10))
    summary = checks_of(result)["disk"]["summary"]
    assert checks_of(result)["disk"]["status"] == "failed"
    assert f"too little disk: {tiny_disk} has 1.0 MiB free; 3x the embedding bytes is 8.9 MiB" == summary


def test_without_connectivity_only_local_checks_run(small_seed) -> None:
    result = run_module("migration_preflight", preflight_args(check_connectivity=False))
    assert result["passed"]
    assert {c["name"] for c in result["checks"] if c["status"] == "skipped"} == {
        "neo4j", "embeddings", "vector_index", "milvus", "postgres", "redis", "copy_estimate"
    }  # fmt: skip


def test_playbook_prints_the_summary_and_keeps_secrets_out_at_high_verbosity(small_seed) -> None:
    done = run_playbook(
        "playbooks/preflight.yml",
        "-e",
        "check_connectivity=true",
        *SMALL_SEED_ODD_DIMENSIONS,
        "-vvv",
        callback="default",
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "PREFLIGHT PASSED" in done.stdout
    for secret in SECRETS:
        assert secret not in done.stdout and secret not in done.stderr


def test_playbook_fails_with_the_reason_when_a_server_is_down(small_seed) -> None:
    done = run_playbook(
        "playbooks/preflight.yml", "-e", "neo4j_uri=bolt://127.0.0.1:7699", "-e", "neo4j_connect_timeout=2"
    )
    assert done.returncode != 0
    assert stats(done)["failures"] == 1
    failed = task_results(done, "Stop unless every check passed")[0]
    assert "Preflight failed: neo4j: Neo4j unreachable at bolt://127.0.0.1:7699" in failed["msg"]
    summary = task_results(done, "Show the summary")[0]["msg"]
    assert summary[0].startswith("PREFLIGHT FAILED")
