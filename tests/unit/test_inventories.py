"""Both inventories pass the shared checks; a missing setting is named. No servers needed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

VAULT = [f"-e vault_{name}_password=from-the-vault" for name in ("neo4j", "milvus", "postgres", "redis")]


def checks(inventory: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    command = [f"{os.path.dirname(sys.executable)}/ansible-playbook", "playbooks/checks.yml", "-i", inventory]
    command += [part for item in extra for part in item.split(" ", 1)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("inventory", ["inventories/local", "inventories/example-production"])
def test_inventory_passes_the_shared_checks(inventory: str) -> None:
    done = checks(inventory, *VAULT)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "from-the-vault" not in done.stdout


def test_an_empty_setting_is_named() -> None:
    done = checks("inventories/local", "-e neo4j_uri=")
    assert done.returncode != 0
    assert "inventory variable neo4j_uri is missing or empty" in done.stdout


def test_a_malformed_address_is_refused() -> None:
    done = checks("inventories/local", "-e milvus_uri=ftp://127.0.0.1:19530")
    assert done.returncode != 0
    assert "milvus_uri http(s):// (got" in done.stdout
