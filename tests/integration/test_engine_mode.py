"""Mode flips on the real fleet: the sandbox's engine instances, the control record in PostgreSQL.

Every test leaves the fleet in neo4j_only, as the sandbox starts it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
import yaml

from .conftest import CONNECTIONS, ROOT, SANDBOX, SECRETS, run_module, run_playbook

POSTGRES = {"host": "127.0.0.1", "user": "migration", "password": "sandbox-postgres-secret", "dbname": "agentdb"}
FLEET = "recommendation-engine"


def flip(mode: str, check: bool = False, **extra: object) -> dict:
    args = {
        "mode": mode,
        "postgres": CONNECTIONS["postgres"],
        "neo4j": CONNECTIONS["neo4j"],
        "source": "{{ neo4j_source }}",
        "timeout": 10,
        **extra,
    }
    return run_module("engine_mode", args, check=check, diff=True)


def record() -> tuple[str, int]:
    with psycopg.connect(**POSTGRES) as connection:
        row = connection.execute(
            "SELECT mode, generation FROM migration_control.storage_mode WHERE fleet = %s", (FLEET,)
        ).fetchone()
    return (row[0], row[1]) if row else ("neo4j_only", 0)


def engine_modes() -> list[str]:
    modes = []
    for port in (8081, 8082):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/mode", timeout=5) as answer:
            modes.append(json.loads(answer.read())["mode"])
    return modes


def to_neo4j_only() -> None:
    result = flip("neo4j_only", verify_reads=False)
    assert not result.get("failed"), result.get("msg")
    assert engine_modes() == ["neo4j_only", "neo4j_only"]


@pytest.fixture
def fleet_back_to_neo4j_only(small_seed):
    to_neo4j_only()
    yield
    to_neo4j_only()


def test_flip_is_predicted_then_acknowledged_by_every_instance_then_unchanged(fleet_back_to_neo4j_only) -> None:
    before = record()
    predicted = flip("dual_write", check=True)
    assert predicted["changed"] and "would flip neo4j_only -> dual_write on 2 live instance(s)" in predicted["message"]
    assert predicted["diff"] == {"before": "storage_mode: neo4j_only\n", "after": "storage_mode: dual_write\n"}
    assert record() == before and engine_modes() == ["neo4j_only", "neo4j_only"]

    done = flip("dual_write")
    assert done["changed"] and not done.get("failed"), done.get("msg")
    assert record() == ("dual_write", before[1] + 1)
    assert sorted(item["instance_id"] for item in done["acknowledged"]) == ["engine-1", "engine-2"]
    assert done["slowest_propagation_ms"] < 1000
    assert done["read_checks"]["passed"] and done["read_checks"]["expected_source"] == "neo4j"
    assert done["read_checks"]["checked"] == 6
    assert engine_modes() == ["dual_write", "dual_write"]
    assert not any(secret in json.dumps(done) for secret in SECRETS)

    for check in (True, False):
        again = flip("dual_write", check=check)
        assert not again["changed"] and "already dual_write" in again["message"]
    assert record() == ("dual_write", before[1] + 1)


def test_a_flip_that_skips_dual_write_is_refused(fleet_back_to_neo4j_only) -> None:
    before = record()
    refused = flip("hybrid")
    assert refused.get("failed")
    assert "refusing to flip neo4j_only -> hybrid: it skips dual_write, shadow" in refused["msg"]
    assert record() == before


def test_an_instance_that_does_not_acknowledge_makes_the_flip_undo_itself(fleet_back_to_neo4j_only) -> None:
    """A live instance that heartbeats but never applies the change: the previous mode comes back."""
    stop = threading.Event()

    def ghost() -> None:
        with psycopg.connect(**POSTGRES, autocommit=True) as connection:
            connection.execute(
                "INSERT INTO migration_control.engine_instances (fleet, instance_id, address, mode, generation) "
                "VALUES (%s, 'ghost', NULL, 'neo4j_only', 0) ON CONFLICT (fleet, instance_id) DO UPDATE "
                "SET heartbeat_at = now(), mode = 'neo4j_only', generation = 0",
                (FLEET,),
            )
            while not stop.wait(0.5):
                connection.execute(
                    "UPDATE migration_control.engine_instances SET heartbeat_at = now() "
                    "WHERE fleet = %s AND instance_id = 'ghost'",
                    (FLEET,),
                )
            connection.execute(
                "DELETE FROM migration_control.engine_instances WHERE fleet = %s AND instance_id = 'ghost'", (FLEET,)
            )

    beat = threading.Thread(target=ghost, daemon=True)
    beat.start()
    try:
        time.sleep(1)
        before = record()
        failed = flip("dual_write", timeout=3)
    finally:
        stop.set()
        beat.join(timeout=10)
    assert failed.get("failed")
    assert "ghost did not acknowledge dual_write within 3 s; put neo4j_only back" in failed["msg"]
    assert failed["reverted"] is True and failed["mode"] == "neo4j_only"
    assert record() == ("neo4j_only", before[1] + 2)
    assert engine_modes() == ["neo4j_only", "neo4j_only"]


def test_rollback_without_confirm_only_previews(fleet_back_to_neo4j_only) -> None:
    assert not flip("dual_write").get("failed")
    before = record()
    done = run_playbook("playbooks/rollback.yml", "-e", "preserve_milvus=false", callback="default")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "Preview only (run with -e confirm=true to act)" in done.stdout
    assert "would flip dual_write -> neo4j_only on 2 live instance(s)" in done.stdout
    assert record() == before and engine_modes() == ["dual_write", "dual_write"]

    confirmed = run_playbook("playbooks/rollback.yml", "-e", "confirm=true", callback="default")
    assert confirmed.returncode == 0, confirmed.stdout[-3000:]
    assert record()[0] == "neo4j_only" and engine_modes() == ["neo4j_only", "neo4j_only"]
    assert "keep collection" in confirmed.stdout


def test_kubernetes_flip_renders_its_manifests_in_check_mode(tmp_path: Path) -> None:
    done = run_playbook(
        "playbooks/dual-write.yml",
        "--check",
        "-e",
        "engine_switch_method=kubernetes",
        "-e",
        f"engine_mode_kubernetes_render_dir={tmp_path}",
        callback="default",
    )
    assert done.returncode == 0, done.stdout[-3000:]
    configmap = yaml.safe_load((tmp_path / "configmap.yml").read_text())
    restart = yaml.safe_load((tmp_path / "deployment-restart.yml").read_text())
    assert configmap["kind"] == "ConfigMap" and configmap["data"] == {"STORAGE_MODE": "dual_write"}
    assert configmap["metadata"] == {
        "name": "recommendation-engine-storage",
        "namespace": "recommendation",
        "labels": {"app.kubernetes.io/managed-by": "hybrid-migration-runbook"},
    }
    annotations = restart["spec"]["template"]["metadata"]["annotations"]
    assert restart["kind"] == "Deployment" and annotations == {"hybrid-migration/storage-mode": "dual_write"}
    assert "no cluster contacted, manifests rendered to" in done.stdout
    # What a failed rollout would apply to put the previous mode back.
    revert = yaml.safe_load((tmp_path / "revert-configmap.yml").read_text())
    revert_restart = yaml.safe_load((tmp_path / "revert-deployment-restart.yml").read_text())
    assert revert["data"] == {"STORAGE_MODE": "neo4j_only"}
    assert revert_restart["spec"]["template"]["metadata"]["annotations"] == {
        "hybrid-migration/storage-mode": "neo4j_only"
    }
    assert record()[0] == "neo4j_only"


def test_config_file_flip_reloads_an_engine_on_a_plain_host(small_seed, tmp_path: Path) -> None:
    """A third engine that reads its mode from a file and reloads on SIGHUP."""
    config = tmp_path / "storage-mode.yml"
    config.write_text("storage_mode: neo4j_only\nmode_generation: 1\n")
    environment = {
        **os.environ,
        "ENGINE_NEO4J": json.dumps({"uri": "bolt://127.0.0.1:7687", "user": "neo4j", "password": SECRETS[0]}),
        "ENGINE_MILVUS": json.dumps({"uri": "http://127.0.0.1:19530"}),
    }
    engine = subprocess.Popen(
        [sys.executable, "-m", "reference_engine", "--instance-id=engine-file", "--port=8089",
         "--mode-source=config_file", f"--config-file={config}"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=(SANDBOX / "logs" / "engine-file.log").open("ab"),
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:8089/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        args = {
            "method": "config_file",
            "config_file": str(config),
            "reload_command": ["kill", "-HUP", str(engine.pid)],
            "endpoints": ["http://127.0.0.1:8089"],
            "verify_reads": True,
        }
        predicted = flip("dual_write", check=True, **args)
        assert predicted["changed"] and "neo4j_only" in config.read_text()
        done = flip("dual_write", **args)
        assert done["changed"] and not done.get("failed"), done.get("msg")
        assert yaml.safe_load(config.read_text()) == {"storage_mode": "dual_write", "mode_generation": 2}
        assert done["read_checks"]["passed"]
        with urllib.request.urlopen("http://127.0.0.1:8089/mode", timeout=5) as answer:
            assert json.loads(answer.read())["mode"] == "dual_write"
        assert not flip("dual_write", **args)["changed"]
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=30)
