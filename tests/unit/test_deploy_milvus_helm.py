"""Helm mode of phase 2 as a dry run: no cluster exists here, so the check-mode run and the values it
renders are what can be tested. Uses the production example inventory, as an operator's dry run would."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.hybrid_migration.milvus_helm import CHART_VERSION, unknown_keys
from conftest import ROOT, ansible_playbook, collection_module_documentation, documented_options, walk_tasks

VAULT = [f"vault_{name}_password=from-the-vault" for name in ("neo4j", "milvus", "postgres", "redis")]
INVENTORY = yaml.safe_load((ROOT / "inventories/example-production/group_vars/all/milvus.yml").read_text())
DEFAULTS = yaml.safe_load((ROOT / "roles/deploy_milvus/defaults/main.yml").read_text())


def dry_run(state_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    variables = [part for variable in [f"migration_state_dir={state_dir}", *VAULT, *extra] for part in ("-e", variable)]
    return ansible_playbook(
        "playbooks/deploy-milvus.yml", "--check", "-i", "inventories/example-production", *variables
    )


def task_outcome(output: str, name: str) -> str:
    """The first result line printed under the task called ``name``."""
    after = output.split(f"Deploy Milvus | {name}]", 1)[1]
    return after.split("\n", 2)[1].split(":", 1)[0]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    state_dir = tmp_path_factory.mktemp("state")
    return dry_run(state_dir), state_dir


def test_the_dry_run_renders_the_values_and_contacts_no_cluster_and_no_milvus(rendered) -> None:
    done, state_dir = rendered
    assert done.returncode == 0, done.stdout[-3000:]
    assert (state_dir / "kubernetes/milvus/values.yml").exists()
    for task in (
        "Install or upgrade the release with the rendered values, waiting for its pods",
        "Add the official Milvus chart repository",
        "Ensure the collection, its HNSW index, and load it",
    ):
        assert task_outcome(done.stdout, task) == "skipping", task
    assert f"--version {DEFAULTS['deploy_milvus_helm_chart_version']}" in done.stdout
    assert "from-the-vault" not in done.stdout
    assert "from-the-vault" not in (state_dir / "kubernetes/milvus/values.yml").read_text()


def test_the_values_hold_the_inventory_topology_on_the_chart_keys(rendered) -> None:
    _, state_dir = rendered
    values = yaml.safe_load((state_dir / "kubernetes/milvus/values.yml").read_text())
    assert unknown_keys(values) == []
    topology = INVENTORY["milvus_helm_topology"]
    assert topology == DEFAULTS["deploy_milvus_helm_seed_topology"]  # the example is the seed's shape
    assert values["cluster"]["enabled"] is True
    assert values["etcd"]["replicaCount"] == topology["etcd"] == 3
    assert values["minio"]["mode"] == "distributed"
    assert values["minio"]["replicas"] == topology["minio"] == 4
    assert values["pulsar"]["enabled"] is True
    pulsar = values["pulsar"]
    assert [pulsar[part]["replicaCount"] for part in ("zookeeper", "bookkeeper", "broker")] == [3, 3, 3]
    assert values["queryNode"]["replicas"] == topology["query_node"] == 2
    assert values["dataNode"]["replicas"] == topology["data_node"] == 2
    assert values["indexNode"]["replicas"] == topology["index_node"] == 1
    resources = INVENTORY["milvus_helm_resources"]
    assert values["queryNode"]["resources"] == resources["query_node"]
    assert values["indexNode"]["resources"] == resources["index_node"]
    assert values["minio"]["resources"] == resources["minio"]
    assert values["minio"]["persistence"]["size"] == INVENTORY["milvus_helm_storage"]["minio"]
    assert values["service"]["type"] == INVENTORY["milvus_helm_service_type"]
    assert values["image"]["all"]["tag"] == DEFAULTS["deploy_milvus_helm_image_tag"]


def test_a_second_dry_run_changes_nothing(rendered) -> None:
    _, state_dir = rendered
    again = dry_run(state_dir)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "changed=0" in again.stdout


def test_a_misspelt_chart_key_stops_the_phase_and_is_named(tmp_path: Path) -> None:
    done = dry_run(tmp_path, '{"milvus_helm_extra_values": {"queryNode": {"replica": 4}}}')
    assert done.returncode != 0
    assert f"values the Milvus chart {CHART_VERSION} does not have (Helm would ignore them): queryNode.replica" in (
        done.stdout
    )
    assert not (tmp_path / "kubernetes/milvus/values.yml").exists()


def test_a_topology_without_quorum_is_refused(tmp_path: Path) -> None:
    topology = {**INVENTORY["milvus_helm_topology"], "etcd": 2}
    done = dry_run(tmp_path, json.dumps({"milvus_helm_topology": topology}))
    assert done.returncode != 0
    assert "etcd needs an odd replica count to keep a quorum, not 2" in done.stdout


def test_the_pinned_chart_is_the_one_whose_keys_are_checked_and_runs_the_sandbox_milvus() -> None:
    assert DEFAULTS["deploy_milvus_helm_chart_version"] == CHART_VERSION
    requirements = (ROOT / "requirements.txt").read_text().splitlines()
    sandbox_milvus = next(line.split("==")[1] for line in requirements if line.startswith("milvus=="))
    assert DEFAULTS["deploy_milvus_helm_image_tag"] == f"v{sandbox_milvus}"
    assert DEFAULTS["deploy_milvus_helm_repository_url"] == "https://zilliztech.github.io/milvus-helm/"


def test_every_kubernetes_task_uses_options_the_installed_module_has() -> None:
    tasks = yaml.safe_load((ROOT / "roles/deploy_milvus/tasks/helm.yml").read_text())
    used = [
        (task["name"], key, task[key])
        for task, _ in walk_tasks(tasks)
        for key in task
        if key.startswith("kubernetes.core.")
    ]
    assert {module for _, module, _ in used} == {
        "kubernetes.core.helm_repository",
        "kubernetes.core.helm",
        "kubernetes.core.k8s_info",
    }
    documentation = collection_module_documentation(*sorted({module for _, module, _ in used}))
    for name, module, arguments in used:
        unknown = set(arguments) - documented_options(documentation[module])
        assert unknown == set(), f"{name}: {module} has no option {sorted(unknown)}"
