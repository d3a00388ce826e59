"""Both inventories pass the shared checks; a missing setting is named. No servers needed."""

from __future__ import annotations

import subprocess

import pytest
from conftest import ansible_playbook

VAULT = [f"-e vault_{name}_password=from-the-vault" for name in ("neo4j", "milvus", "postgres", "redis")]


def checks(inventory: str, *extra: str) -> subprocess.CompletedProcess[str]:
    arguments = [part for item in extra for part in item.split(" ", 1)]
    return ansible_playbook("playbooks/checks.yml", "-i", inventory, *arguments)


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
