from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.module_utils.hybrid_migration.errors import TerminalError
from ansible.module_utils.hybrid_migration.milvus_helm import (
    helm_command,
    render_values,
    topology_problems,
    unknown_keys,
    write_values_file,
)

SEED = {
    "etcd": 3,
    "minio": 4,
    "pulsar_zookeeper": 3,
    "pulsar_bookkeeper": 3,
    "pulsar_broker": 3,
    "pulsar_proxy": 1,
    "proxy": 2,
    "query_node": 2,
    "data_node": 2,
    "index_node": 1,
}


def render(topology=None, resources=None, storage=None, extra_values=None):
    return render_values(
        topology=SEED if topology is None else topology,
        resources=resources or {},
        storage=storage or {},
        image_repository="milvusdb/milvus",
        image_tag="v2.3.5",
        extra_values=extra_values,
    )


def test_the_seed_topology_lands_on_the_chart_keys_that_hold_each_replica_count() -> None:
    values = render().values
    assert values["cluster"] == {"enabled": True}
    assert values["etcd"]["replicaCount"] == 3
    assert values["minio"]["mode"] == "distributed" and values["minio"]["replicas"] == 4
    assert values["pulsar"]["enabled"] is True
    assert [values["pulsar"][name]["replicaCount"] for name in ("zookeeper", "bookkeeper", "broker")] == [3, 3, 3]
    assert values["queryNode"]["replicas"] == 2
    assert values["dataNode"]["replicas"] == 2
    assert values["indexNode"]["replicas"] == 1
    assert values["image"]["all"] == {"repository": "milvusdb/milvus", "tag": "v2.3.5"}
    assert values["kafka"] == {"enabled": False}


def test_resources_and_volume_sizes_go_to_their_components() -> None:
    limits = {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "16Gi"}}
    rendered = render(
        resources={"query_node": limits, "root_coordinator": {"limits": {"memory": "2Gi"}}},
        storage={"minio": "500Gi", "pulsar_ledgers": "200Gi", "etcd": "10Gi"},
    )
    values = rendered.values
    assert values["queryNode"]["resources"] == limits
    assert values["rootCoordinator"]["resources"] == {"limits": {"memory": "2Gi"}}
    assert values["minio"]["persistence"]["size"] == "500Gi"
    assert values["etcd"]["persistence"]["size"] == "10Gi"
    assert values["pulsar"]["bookkeeper"]["volumes"]["ledgers"]["size"] == "200Gi"
    assert rendered.replicas["query_node"] == 2 and rendered.replicas["minio"] == 4


def test_every_unusable_shape_is_named_at_once() -> None:
    problems = topology_problems(
        {**SEED, "etcd": 2, "pulsar_zookeeper": 4, "minio": 2, "query_nodes": 1},
        {"query_node": {"request": {}}, "gpu_node": {}},
        {"minio": "1Ti", "logs": "1Gi"},
    )
    text = "; ".join(problems)
    assert "unknown component 'query_nodes'" in text
    assert "etcd needs an odd replica count" in text
    assert "pulsar_zookeeper needs an odd replica count" in text
    assert "minio in distributed mode needs at least 4 replicas" in text
    assert "resources of query_node take only requests and limits" in text
    assert "resources for unknown component 'gpu_node'" in text
    assert "storage for unknown volume 'logs'" in text


@pytest.mark.parametrize("count", [0, -1, "2", True, None])
def test_a_replica_count_must_be_a_positive_whole_number(count) -> None:
    with pytest.raises(TerminalError, match="index_node needs a replica count of at least 1"):
        render(topology={**SEED, "index_node": count})


def test_a_misspelt_key_in_the_extra_values_fails_instead_of_being_ignored_by_helm() -> None:
    with pytest.raises(TerminalError, match=r"does not have \(Helm would ignore them\): queryNode.replica, querynode$"):
        render(extra_values={"querynode": {"replicas": 4}, "queryNode": {"replica": 4}})


def test_extra_values_the_chart_knows_are_merged_last() -> None:
    values = render(extra_values={"queryNode": {"hpa": {"enabled": True}}, "proxy": {"replicas": 3}}).values
    assert values["queryNode"] == {"replicas": 2, "hpa": {"enabled": True}}
    assert values["proxy"]["replicas"] == 3


def test_a_mapping_where_the_chart_holds_one_value_is_refused() -> None:
    assert unknown_keys({"cluster": "yes"}) == ["cluster (a mapping in the chart)"]
    assert unknown_keys({"etcd": {"replicaCount": {"value": 3}}}) == ["etcd.replicaCount (a single value in the chart)"]


def test_credentials_are_refused_in_the_values() -> None:
    with pytest.raises(TerminalError, match=r"credentials do not belong in the values file \(minio.secretKey\)"):
        render(extra_values={"minio": {"secretKey": "s3cr3t"}})


def test_the_values_file_is_written_once_and_check_mode_writes_nothing(tmp_path: Path) -> None:
    values = render().values
    path = tmp_path / "milvus" / "values.yml"
    assert write_values_file(path, values, check_mode=True)["changed"] is True
    assert not path.exists()
    first = write_values_file(path, values, check_mode=False)
    assert first["changed"] and first["before"] == ""
    assert yaml.safe_load(path.read_text()) == values
    assert write_values_file(path, values, check_mode=False)["changed"] is False


def test_the_equivalent_helm_command_names_the_pinned_version() -> None:
    command = helm_command("milvus", "vectors", "milvus/milvus", "4.1.17", "/tmp/values.yml", "20m")
    assert command == (
        "helm upgrade --install milvus milvus/milvus --version 4.1.17 --namespace vectors --create-namespace "
        "--values /tmp/values.yml --wait --timeout 20m"
    )
