"""Helpers that drive the real modules and playbooks against the sandbox servers.

Modules run through ``ansible`` and playbooks through ``ansible-playbook`` with
the JSON callback, so a test sees exactly what an operator's run returns.
Arguments may hold Jinja (``{{ neo4j_connection }}``): they are templated with
the local inventory, so tests use the same credentials as the runbook.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SANDBOX = ROOT / ".sandbox"

CONNECTIONS = {
    "neo4j": "{{ neo4j_connection }}",
    "milvus": "{{ milvus_connection }}",
    "postgres": "{{ postgres_connection }}",
    "redis": "{{ redis_connection }}",
}
SECRETS = ("sandbox-neo4j-secret", "sandbox-postgres-secret", "sandbox-redis-secret")


def ansible_env(callback: str = "json") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK=callback,
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_NOCOLOR="1",
        PATH=f"{BIN}:{env.get('PATH', '')}",
    )
    return env


def run_module(name: str, args: dict[str, Any], check: bool = False, diff: bool = False) -> dict[str, Any]:
    """Run one module on localhost and return its result."""
    command = [str(BIN / "ansible"), "localhost", "-m", name, "-a", json.dumps(args)]
    command += ["--check"] * check + ["--diff"] * diff
    done = subprocess.run(command, cwd=ROOT, env=ansible_env(), capture_output=True, text=True, timeout=900)
    try:
        output = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"ansible printed no JSON (rc {done.returncode}):\n{done.stdout}\n{done.stderr}") from None
    return output["plays"][0]["tasks"][0]["hosts"]["localhost"]


def run_playbook(playbook: str, *args: str, callback: str = "json") -> subprocess.CompletedProcess[str]:
    """Run a playbook; with the JSON callback, ``.json`` on the result holds the parsed output."""
    command = [str(BIN / "ansible-playbook"), playbook, *args]
    done = subprocess.run(command, cwd=ROOT, env=ansible_env(callback), capture_output=True, text=True, timeout=1800)
    done.json = json.loads(done.stdout) if callback == "json" and done.stdout.strip().startswith("{") else None  # type: ignore[attr-defined]
    return done


def stats(done: subprocess.CompletedProcess[str]) -> dict[str, int]:
    return done.json["stats"]["localhost"]  # type: ignore[attr-defined]


def task_results(done: subprocess.CompletedProcess[str], name_part: str) -> list[dict[str, Any]]:
    """Results of every task whose name contains ``name_part``."""
    found = []
    for play in done.json["plays"]:  # type: ignore[attr-defined]
        for task in play["tasks"]:
            if name_part in task["task"]["name"] and "localhost" in task["hosts"]:
                found.append(task["hosts"]["localhost"])
    return found


SMALL_SEED = {
    "media_count": 1000,
    "user_count": 50,
    "agent_count": 5,
    "experiences_per_agent": 40,
    "qvalues_per_agent": 20,
    "bad_records": True,
    "random_seed": 7,
}


def seed_small(reset: bool = False) -> dict[str, Any]:
    """Fill the sandbox with the small data set; ``reset`` seeds it again even if it is there (a load changed it)."""
    result = run_module(
        "sandbox_seed",
        {
            "neo4j": CONNECTIONS["neo4j"],
            "redis": CONNECTIONS["redis"],
            "source": "{{ neo4j_source }}",
            "replace_other_data": True,
            "reset": reset,
            "manifest_file": str(SANDBOX / "test-seed-manifest.json"),
            **SMALL_SEED,
        },
    )
    assert not result.get("failed"), result.get("msg")
    return result


@pytest.fixture(scope="session")
def small_seed() -> dict[str, Any]:
    """The sandbox filled with a small data set with every bad record (replacing what was there)."""
    return seed_small()


@pytest.fixture()
def clean_target(small_seed):
    """No collection, no AgentDB schema and no migration state, as before a first migration."""
    import psycopg

    drop_collection("media_embeddings")
    with psycopg.connect(host="127.0.0.1", user="migration", password=SECRETS[1], dbname="agentdb") as connection:
        connection.execute("DROP SCHEMA IF EXISTS agentdb CASCADE")
    for name in (
        "migration_checkpoint.json",
        "embeddings_rejects.jsonl",
        "agentdb_checkpoint.json",
        "agentdb_rejects.jsonl",
        "agentdb_verification.json",
    ):
        (SANDBOX / "state" / name).unlink(missing_ok=True)


def milvus_client():
    from pymilvus import MilvusClient

    return MilvusClient(uri="http://127.0.0.1:19530", timeout=30)


def drop_collection(name: str) -> None:
    client = milvus_client()
    if client.has_collection(name):
        client.drop_collection(name)
    client.close()


def ensure_test_collection(name: str, **overrides: Any) -> dict[str, Any]:
    """A fresh collection for one test, made by the milvus_collection module."""
    drop_collection(name)
    result = run_module(
        "milvus_collection",
        {
            "milvus": CONNECTIONS["milvus"],
            "neo4j": CONNECTIONS["neo4j"],
            "source": "{{ neo4j_source }}",
            "collection": name,
            **overrides,
        },
    )
    assert not result.get("failed"), result.get("msg")
    return result


def kill_playbook_when(
    playbook: str,
    module: str,
    extra_vars: str,
    checkpoint: Path,
    ready: Callable[[dict[str, Any]], bool],
    timeout: float = 120,
) -> dict[str, Any]:
    """Start ``playbook`` and SIGKILL it, its workers and ``module`` (with any child) once ``ready(checkpoint)``.

    Ansible's workers call setsid, so killing the playbook's process group is not enough: they are
    found by their command line, the module by its AnsiballZ file. Returns the checkpoint at the kill.

    Raises:
        AssertionError: the copy ended before it could be killed, or a process lives on after the kill.
    """
    import psutil

    def ours(cmdline: list[str] | None) -> bool:
        text = " ".join(cmdline or [])
        started_here = "ansible-playbook" in text and playbook in text and extra_vars in text
        return started_here or any(part.endswith(f"AnsiballZ_{module}.py") for part in cmdline or [])

    process = subprocess.Popen(
        [str(BIN / "ansible-playbook"), playbook, "-e", extra_vars],
        cwd=ROOT,
        env=ansible_env("default"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    killed_at = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            state = json.loads(checkpoint.read_text())
        except (OSError, ValueError):
            state = {}
        if state and not state.get("complete") and ready(state):
            victims = [p for p in psutil.process_iter(["cmdline"]) if ours(p.info["cmdline"])]
            os.killpg(process.pid, signal.SIGKILL)
            for victim in victims:
                with contextlib.suppress(psutil.NoSuchProcess):
                    victim.kill()
            killed_at = state
            break
        time.sleep(0.01)
    process.wait(timeout=60)
    assert killed_at is not None, "the copy ended before the kill"
    time.sleep(1)
    survivors = [p.info["cmdline"] for p in psutil.process_iter(["cmdline"]) if ours(p.info["cmdline"])]
    assert not survivors, f"still running after the kill: {survivors}"
    return killed_at


def kill_copy_after_batches(extra_vars: str, checkpoint: Path, batches: int) -> None:
    """Start migrate-embeddings.yml and SIGKILL it once ``batches`` are checkpointed."""
    kill_playbook_when(
        "playbooks/migrate-embeddings.yml",
        "embeddings_copy",
        extra_vars,
        checkpoint,
        lambda state: state.get("batches", 0) >= batches,
    )
    assert not json.loads(checkpoint.read_text())["complete"], "the copy ended before the kill"
