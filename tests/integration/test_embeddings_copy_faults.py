"""The copy while Milvus is killed (SIGKILL) and restarted: retried or resumable, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from .conftest import BIN, ROOT, SANDBOX, ansible_env, milvus_client, run_playbook
from .test_embeddings_copy import (  # noqa: F401 - copy_args is a fixture
    COLLECTION,
    assert_milvus_equals_the_valid_source,
    copy_args,
    playbook_vars,
)

MILVUS_ONLY = '{"sandbox_services": ["milvus"]}'


def test_milvus_killed_and_restarted_mid_copy(copy_args, small_seed, tmp_path: Path) -> None:  # noqa: F811 - fixture
    checkpoint = tmp_path / "checkpoint.json"
    extra = playbook_vars(
        tmp_path,
        migrate_embeddings_retry_attempts=14,
        migrate_embeddings_retry_max_delay=10,
        batch_size=10,
        concurrency=2,
    )
    log = (tmp_path / "copy.log").open("w")
    copy = subprocess.Popen(
        [str(BIN / "ansible-playbook"), "playbooks/migrate-embeddings.yml", "-e", extra],
        cwd=ROOT,
        env=ansible_env("default"),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if json.loads(checkpoint.read_text()).get("batches", 0) >= 15:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    milvus_pid = json.loads((SANDBOX / "milvus.pid").read_text())["pid"]
    os.killpg(milvus_pid, signal.SIGKILL)
    killed_at = json.loads(checkpoint.read_text())
    assert not killed_at["complete"], "the copy ended before Milvus was killed"

    restarted = run_playbook("playbooks/sandbox.yml", "-e", "sandbox_install=false", "-e", MILVUS_ONLY)
    assert restarted.returncode == 0, restarted.stdout[-2000:]
    copy.wait(timeout=600)
    log.close()
    output = (tmp_path / "copy.log").read_text()
    if copy.returncode != 0:
        assert "resume with: ansible-playbook playbooks/migrate-embeddings.yml" in output, output[-3000:]
        resumed = run_playbook("playbooks/migrate-embeddings.yml", "-e", extra)
        assert resumed.returncode == 0, resumed.stdout[-3000:]
    else:
        assert "retries: 0" not in output, "Milvus was down, yet nothing was retried"
    final = json.loads(checkpoint.read_text())
    assert final["complete"] and final["migrated"] == 1006
    client = milvus_client()
    client.load_collection(COLLECTION)
    assert_milvus_equals_the_valid_source(small_seed)
