"""Values for the official Milvus Helm chart, built from the inventory's topology.

Helm ignores a values key the chart does not know, so a misspelt replica count would install a
cluster of the wrong shape without a word. Every rendered key is therefore checked against the
keys of the pinned chart (written down here from its values.yaml) before anything is installed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import TerminalError
from .run_state import write_atomically

CHART_VERSION = "4.1.17"
"""The chart version the key list below describes; the role pins the same version."""

FREE = object()
"""Below this key the chart takes any structure (Kubernetes objects, free-form config)."""

_RESOURCE_BLOCK = FREE  # Kubernetes resource requirements: requests / limits of any resource name

_MILVUS_COMPONENT = {
    "enabled": None,
    "replicas": None,
    "resources": _RESOURCE_BLOCK,
    "nodeSelector": FREE,
    "affinity": FREE,
    "tolerations": FREE,
    "securityContext": FREE,
    "topologySpreadConstraints": FREE,
    "extraEnv": FREE,
    "heaptrack": FREE,
    "profiling": FREE,
    "strategy": FREE,
    "annotations": FREE,
    "labels": FREE,
    "volumes": FREE,
    "volumeMounts": FREE,
}
_COORDINATOR = {**_MILVUS_COMPONENT, "activeStandby": FREE, "service": FREE}
_WORKER = {**_MILVUS_COMPONENT, "hpa": FREE, "disk": FREE}

_PULSAR_COMPONENT = {
    "replicaCount": None,
    "resources": _RESOURCE_BLOCK,
    "component": None,
    "configData": FREE,
    "pdb": FREE,
    "affinity": FREE,
    "nodeSelector": FREE,
    "tolerations": FREE,
    "annotations": FREE,
    "podMonitor": FREE,
    "volumes": FREE,
    "updateStrategy": FREE,
    "podManagementPolicy": None,
    "gracePeriod": None,
    "service": FREE,
    "ports": FREE,
    "autoscaling": FREE,
    "probe": FREE,
}

CHART_KEYS: dict[str, Any] = {
    "nameOverride": None,
    "fullnameOverride": None,
    "cluster": {"enabled": None},
    "image": {"all": {"repository": None, "tag": None, "pullPolicy": None, "pullSecrets": FREE}, "tools": FREE},
    "nodeSelector": FREE,
    "tolerations": FREE,
    "affinity": FREE,
    "topologySpreadConstraints": FREE,
    "securityContext": FREE,
    "labels": FREE,
    "annotations": FREE,
    "volumes": FREE,
    "volumeMounts": FREE,
    "customConfigMap": None,
    "extraConfigFiles": FREE,
    "service": {
        "type": None,
        "port": None,
        "portName": None,
        "nodePort": None,
        "annotations": FREE,
        "labels": FREE,
        "externalIPs": FREE,
        "loadBalancerSourceRanges": FREE,
        "loadBalancerIP": None,
    },
    "ingress": FREE,
    "serviceAccount": FREE,
    "metrics": {
        "enabled": None,
        "serviceMonitor": {"enabled": None, "interval": None, "scrapeTimeout": None, "additionalLabels": FREE},
    },
    "livenessProbe": FREE,
    "readinessProbe": FREE,
    "log": FREE,
    "heaptrack": FREE,
    "standalone": {**_WORKER, "messageQueue": None, "persistence": FREE},
    "proxy": {**_MILVUS_COMPONENT, "hpa": FREE, "http": FREE, "tls": FREE, "service": FREE},
    "rootCoordinator": _COORDINATOR,
    "queryCoordinator": _COORDINATOR,
    "indexCoordinator": _COORDINATOR,
    "dataCoordinator": _COORDINATOR,
    "mixCoordinator": _COORDINATOR,
    "queryNode": _WORKER,
    "indexNode": _WORKER,
    "dataNode": _WORKER,
    "attu": FREE,
    "minio": {
        "enabled": None,
        "name": None,
        "mode": None,
        "replicas": None,
        "drivesPerNode": None,
        "zones": None,
        "image": FREE,
        "accessKey": None,
        "secretKey": None,
        "existingSecret": None,
        "bucketName": None,
        "rootPath": None,
        "useIAM": None,
        "iamEndpoint": None,
        "region": None,
        "useVirtualHost": None,
        "podDisruptionBudget": FREE,
        "resources": _RESOURCE_BLOCK,
        "service": FREE,
        "persistence": {"enabled": None, "existingClaim": None, "storageClass": None, "accessMode": None, "size": None},
        "livenessProbe": FREE,
        "readinessProbe": FREE,
        "startupProbe": FREE,
        "nodeSelector": FREE,
        "tolerations": FREE,
        "affinity": FREE,
    },
    "etcd": {
        "enabled": None,
        "name": None,
        "replicaCount": None,
        "pdb": FREE,
        "image": FREE,
        "service": FREE,
        "auth": FREE,
        "persistence": {"enabled": None, "storageClass": None, "accessMode": None, "size": None},
        "livenessProbe": FREE,
        "readinessProbe": FREE,
        "autoCompactionMode": None,
        "autoCompactionRetention": None,
        "extraEnvVars": FREE,
        "resources": _RESOURCE_BLOCK,
        "nodeSelector": FREE,
        "tolerations": FREE,
        "affinity": FREE,
    },
    "pulsar": {
        "enabled": None,
        "name": None,
        "fullnameOverride": None,
        "persistence": None,
        "maxMessageSize": None,
        "rbac": FREE,
        "affinity": FREE,
        "components": FREE,
        "monitoring": FREE,
        "images": FREE,
        "zookeeper": _PULSAR_COMPONENT,
        "bookkeeper": _PULSAR_COMPONENT,
        "autorecovery": _PULSAR_COMPONENT,
        "broker": _PULSAR_COMPONENT,
        "proxy": _PULSAR_COMPONENT,
        "pulsar_manager": FREE,
        "pulsar_metadata": FREE,
    },
    "kafka": FREE,
    "externalS3": FREE,
    "externalGcs": FREE,
    "externalEtcd": FREE,
    "externalPulsar": FREE,
    "externalKafka": FREE,
}

# Topology name -> (path of its replica count, path of its resources), in the chart's values.
COMPONENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "etcd": (("etcd", "replicaCount"), ("etcd", "resources")),
    "minio": (("minio", "replicas"), ("minio", "resources")),
    "pulsar_zookeeper": (("pulsar", "zookeeper", "replicaCount"), ("pulsar", "zookeeper", "resources")),
    "pulsar_bookkeeper": (("pulsar", "bookkeeper", "replicaCount"), ("pulsar", "bookkeeper", "resources")),
    "pulsar_broker": (("pulsar", "broker", "replicaCount"), ("pulsar", "broker", "resources")),
    "pulsar_proxy": (("pulsar", "proxy", "replicaCount"), ("pulsar", "proxy", "resources")),
    "proxy": (("proxy", "replicas"), ("proxy", "resources")),
    "query_node": (("queryNode", "replicas"), ("queryNode", "resources")),
    "data_node": (("dataNode", "replicas"), ("dataNode", "resources")),
    "index_node": (("indexNode", "replicas"), ("indexNode", "resources")),
}
COORDINATORS = {
    "root_coordinator": "rootCoordinator",
    "query_coordinator": "queryCoordinator",
    "data_coordinator": "dataCoordinator",
    "index_coordinator": "indexCoordinator",
}
STORAGE = {
    "etcd": ("etcd", "persistence", "size"),
    "minio": ("minio", "persistence", "size"),
    "pulsar_journal": ("pulsar", "bookkeeper", "volumes", "journal", "size"),
    "pulsar_ledgers": ("pulsar", "bookkeeper", "volumes", "ledgers", "size"),
    "pulsar_zookeeper": ("pulsar", "zookeeper", "volumes", "data", "size"),
}
RESOURCE_KINDS = {"requests", "limits"}
SECRET_KEYS = {"accessKey", "secretKey", "password", "token"}


@dataclass(frozen=True)
class ChartValues:
    """The rendered values and what a reader checks first: the replica count of each component."""

    values: dict[str, Any]
    replicas: dict[str, int]


def render_values(
    topology: Mapping[str, int],
    resources: Mapping[str, Mapping[str, Any]],
    storage: Mapping[str, str],
    image_repository: str,
    image_tag: str,
    service_type: str = "ClusterIP",
    service_monitor: bool = False,
    extra_values: Mapping[str, Any] | None = None,
) -> ChartValues:
    """A cluster-mode Milvus with Pulsar, MinIO in distributed mode and etcd, shaped by ``topology``."""
    problems = topology_problems(topology, resources, storage)
    if problems:
        raise TerminalError("the Milvus topology cannot be installed: " + "; ".join(problems))
    values: dict[str, Any] = {
        "cluster": {"enabled": True},
        "image": {"all": {"repository": image_repository, "tag": image_tag}},
        "service": {"type": service_type, "port": 19530},
        "metrics": {"enabled": True, "serviceMonitor": {"enabled": service_monitor}},
        "minio": {"enabled": True, "mode": "distributed"},
        "etcd": {"enabled": True},
        "pulsar": {"enabled": True},
        "kafka": {"enabled": False},
    }
    for name, (replica_path, resource_path) in COMPONENTS.items():
        _set(values, replica_path, int(topology[name]))
        if resources.get(name):
            _set(values, resource_path, copy.deepcopy(dict(resources[name])))
    for name, key in COORDINATORS.items():
        if resources.get(name):
            _set(values, (key, "resources"), copy.deepcopy(dict(resources[name])))
    for name, path in STORAGE.items():
        if storage.get(name):
            _set(values, path, str(storage[name]))
    if extra_values:
        _merge(values, extra_values)
    secrets = [path for path in _paths(values) if path.rsplit(".", 1)[-1] in SECRET_KEYS]
    if secrets:
        raise TerminalError(
            f"credentials do not belong in the values file ({', '.join(secrets)}): "
            "put them in a Kubernetes Secret and name it in minio.existingSecret"
        )
    unknown = sorted(unknown_keys(values))
    if unknown:
        raise TerminalError(
            f"values the Milvus chart {CHART_VERSION} does not have (Helm would ignore them): {', '.join(unknown)}"
        )
    replicas = {name: _get(values, path) for name, (path, _) in COMPONENTS.items()}
    return ChartValues(values=values, replicas=replicas)


def topology_problems(
    topology: Mapping[str, Any], resources: Mapping[str, Any], storage: Mapping[str, Any]
) -> list[str]:
    """Everything wrong with the requested shape, so one run names all of it."""
    problems = [f"unknown component {name!r}" for name in sorted(set(topology) - set(COMPONENTS))]
    counts = {}
    for name in COMPONENTS:
        count = topology.get(name)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(f"{name} needs a replica count of at least 1, not {count!r}")
        else:
            counts[name] = count
    for name in ("etcd", "pulsar_zookeeper"):
        if counts.get(name, 1) % 2 == 0:
            problems.append(f"{name} needs an odd replica count to keep a quorum, not {counts[name]}")
    if counts.get("minio", 4) < 4:
        problems.append(f"minio in distributed mode needs at least 4 replicas, not {counts['minio']}")
    known_resources = set(COMPONENTS) | set(COORDINATORS)
    for name, block in resources.items():
        if name not in known_resources:
            problems.append(f"resources for unknown component {name!r}")
        elif block and (not isinstance(block, Mapping) or set(block) - RESOURCE_KINDS):
            problems.append(f"resources of {name} take only requests and limits")
    problems.extend(f"storage for unknown volume {name!r}" for name in sorted(set(storage) - set(STORAGE)))
    return problems


def unknown_keys(values: Mapping[str, Any], schema: Mapping[str, Any] | None = None, prefix: str = "") -> list[str]:
    """Dotted paths in ``values`` that the chart does not read."""
    schema = CHART_KEYS if schema is None else schema
    found = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in schema:
            found.append(path)
            continue
        below = schema[key]
        if below is FREE:
            continue
        if isinstance(below, dict):
            if isinstance(value, Mapping):
                found.extend(unknown_keys(value, below, path + "."))
            else:
                found.append(f"{path} (a mapping in the chart)")
        elif isinstance(value, Mapping):
            found.append(f"{path} (a single value in the chart)")
    return found


def values_document(values: Mapping[str, Any]) -> str:
    """The values file's text, with a header saying where it comes from."""
    header = f"# Values for the Milvus Helm chart {CHART_VERSION}, rendered by the deploy_milvus role.\n"
    return header + yaml.safe_dump(dict(values), sort_keys=False, default_flow_style=False)


def write_values_file(path: Path, values: Mapping[str, Any], check_mode: bool) -> dict[str, Any]:
    """Write the values file when it differs; the before and after texts are the diff."""
    after = values_document(values)
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    changed = before != after
    if changed and not check_mode:
        write_atomically(path, after, mode=0o644)
    return {"changed": changed, "before": before, "after": after}


def helm_command(
    release: str, namespace: str, chart_ref: str, chart_version: str, values_file: str, timeout: str
) -> str:
    """The command a person would type for the same install, shown by the dry run."""
    return (
        f"helm upgrade --install {release} {chart_ref} --version {chart_version} --namespace {namespace} "
        f"--create-namespace --values {values_file} --wait --timeout {timeout}"
    )


def _set(values: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        values = values.setdefault(key, {})
    values[path[-1]] = value


def _paths(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    found = []
    for key, value in values.items():
        found.append(f"{prefix}{key}")
        if isinstance(value, Mapping):
            found.extend(_paths(value, f"{prefix}{key}."))
    return found


def _get(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        values = values[key]
    return values


def _merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
