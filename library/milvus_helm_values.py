#!/usr/bin/python
"""Ansible module: the values file for the official Milvus Helm chart, from the inventory's topology."""

from __future__ import annotations

DOCUMENTATION = r"""
module: milvus_helm_values
short_description: Render and check the values file of the official Milvus Helm chart
description:
  - Builds the values of a cluster-mode Milvus (Pulsar, MinIO in distributed mode, etcd) from a topology
    of replica counts, resources and volume sizes, and writes them to O(dest) when they differ.
  - Every key is checked against the keys of the pinned chart version before anything is written, because
    Helm silently ignores keys a chart does not know; a misspelt key fails the task and is named.
  - Refuses shapes that cannot work, naming all of them at once, for example an even etcd or ZooKeeper
    count (no quorum) or fewer than 4 MinIO replicas in distributed mode.
  - Talks to no cluster. It also returns the equivalent C(helm upgrade --install) command.
  - Check mode and diff show the file that would be written.
version_added: "1.0.0"
author: Hybrid migration team
options:
  dest:
    description: Path of the values file.
    type: path
    required: true
  topology:
    description:
      - Replica count of each component, keys C(etcd), C(minio), C(pulsar_zookeeper), C(pulsar_bookkeeper),
        C(pulsar_broker), C(pulsar_proxy), C(proxy), C(query_node), C(data_node), C(index_node); all required.
    type: dict
    required: true
  resources:
    description:
      - Kubernetes resource requirements (C(requests) and C(limits)) by component; the topology's names plus
        C(root_coordinator), C(query_coordinator), C(data_coordinator), C(index_coordinator).
    type: dict
    default: {}
  storage:
    description: Volume sizes, keys C(etcd), C(minio), C(pulsar_journal), C(pulsar_ledgers), C(pulsar_zookeeper).
    type: dict
    default: {}
  image_repository:
    description: Milvus image repository.
    type: str
    default: milvusdb/milvus
  image_tag:
    description: Milvus image tag.
    type: str
    default: v2.3.5
  service_type:
    description: Kubernetes Service type of the Milvus proxy.
    type: str
    choices: [ClusterIP, LoadBalancer, NodePort]
    default: ClusterIP
  service_monitor:
    description: Create a ServiceMonitor for the Prometheus operator.
    type: bool
    default: false
  extra_values:
    description: Further chart values, merged last; checked against the chart's keys like the rest.
    type: dict
    default: {}
  chart_version:
    description: The chart version that will be installed; a warning says when it is not the version whose keys are known.
    type: str
    default: 4.1.17
  chart_ref:
    description: Chart reference, for the returned command.
    type: str
    default: milvus/milvus
  release:
    description: Release name, for the returned command.
    type: str
    default: milvus
  namespace:
    description: Namespace, for the returned command.
    type: str
    default: milvus
  wait_timeout:
    description: Helm wait timeout, for the returned command.
    type: str
    default: 20m
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Deploy Milvus | Render the chart values for the seed's topology
  milvus_helm_values:
    dest: /var/lib/migration/kubernetes/milvus/values.yml
    topology:
      etcd: 3
      minio: 4
      pulsar_zookeeper: 3
      pulsar_bookkeeper: 3
      pulsar_broker: 3
      pulsar_proxy: 1
      proxy: 2
      query_node: 2
      data_node: 2
      index_node: 1
    resources:
      query_node:
        requests: {cpu: "2", memory: 8Gi}
        limits: {cpu: "4", memory: 16Gi}
    storage:
      minio: 500Gi
"""

RETURN = r"""
changed:
  description: Whether the values file was (or in check mode would be) written.
  returned: always
  type: bool
dest:
  description: Path of the values file.
  returned: always
  type: str
values:
  description: The rendered chart values.
  returned: always
  type: dict
replicas:
  description: Replica count of each component as the chart will read it.
  returned: always
  type: dict
  sample: {etcd: 3, minio: 4, pulsar_broker: 3, query_node: 2, data_node: 2, index_node: 1}
helm_command:
  description: The C(helm upgrade --install) command equivalent to the install.
  returned: always
  type: str
"""

from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.milvus_helm import (
    CHART_VERSION,
    helm_command,
    render_values,
    write_values_file,
)


def argument_spec() -> dict:
    return {
        "dest": {"type": "path", "required": True},
        "topology": {"type": "dict", "required": True},
        "resources": {"type": "dict", "default": {}},
        "storage": {"type": "dict", "default": {}},
        "image_repository": {"type": "str", "default": "milvusdb/milvus"},
        "image_tag": {"type": "str", "default": "v2.3.5"},
        "service_type": {"type": "str", "choices": ["ClusterIP", "LoadBalancer", "NodePort"], "default": "ClusterIP"},
        "service_monitor": {"type": "bool", "default": False},
        "extra_values": {"type": "dict", "default": {}},
        "chart_version": {"type": "str", "default": CHART_VERSION},
        "chart_ref": {"type": "str", "default": "milvus/milvus"},
        "release": {"type": "str", "default": "milvus"},
        "namespace": {"type": "str", "default": "milvus"},
        "wait_timeout": {"type": "str", "default": "20m"},
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if params["chart_version"] != CHART_VERSION:
        module.warn(
            f"chart {params['chart_version']} is installed but the keys were checked against chart {CHART_VERSION}'s"
        )
    try:
        rendered = render_values(
            topology=params["topology"],
            resources=params["resources"],
            storage=params["storage"],
            image_repository=params["image_repository"],
            image_tag=params["image_tag"],
            service_type=params["service_type"],
            service_monitor=params["service_monitor"],
            extra_values=params["extra_values"],
        )
        written = write_values_file(Path(params["dest"]), rendered.values, module.check_mode)
    except (MigrationError, OSError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(
        changed=written["changed"],
        diff={"before": written["before"], "after": written["after"]} if written["changed"] else {},
        dest=params["dest"],
        values=rendered.values,
        replicas=rendered.replicas,
        helm_command=helm_command(
            params["release"],
            params["namespace"],
            params["chart_ref"],
            params["chart_version"],
            params["dest"],
            params["wait_timeout"],
        ),
    )


if __name__ == "__main__":
    main()
