#!/usr/bin/python
"""Ansible module: run one sandbox server process, tracked by pid, with a health probe."""

from __future__ import annotations

DOCUMENTATION = r"""
module: sandbox_process
short_description: Start, stop or inspect one sandbox server process
description:
  - Starts a server in a session of its own, records its pid and start time in O(pidfile),
    and waits until the server answers a real health probe (a Bolt query, a Milvus version
    call, PING, an HTTP readiness endpoint or a command such as C(pg_isready)).
  - Stopping sends O(stop_signal) to the process group, waits O(stop_grace_seconds), then
    SIGKILLs whatever is left, so nothing the server spawned keeps running.
  - A running, healthy server is left alone, so C(state=started) twice changes nothing.
version_added: "1.0.0"
author: Hybrid migration team
extends_documentation_fragment:
  - hybrid_migration.NEO4J
  - hybrid_migration.MILVUS
  - hybrid_migration.REDIS
options:
  name:
    description: Name used in messages.
    type: str
    required: true
  state:
    description: C(started) brings the server up, C(stopped) down, C(status) only reports.
    type: str
    choices: [started, stopped, status]
    default: started
  command:
    description: Program and arguments. Required with O(state=started).
    type: list
    elements: str
  pidfile:
    description: Where the pid and start time are recorded.
    type: path
    required: true
  logfile:
    description: File that receives the server's stdout and stderr (appended).
    type: path
    required: true
  chdir:
    description: Working directory of the server.
    type: path
  environment:
    description: Extra environment variables; may hold secrets, so never logged.
    type: dict
    default: {}
  run_as:
    description: Local user to run the server as (PostgreSQL refuses to run as root).
    type: str
  ports:
    description: Ports the server listens on; a port held by another process fails the start.
    type: list
    elements: int
    default: []
  stop_signal:
    description: Signal that asks the server to stop.
    type: str
    choices: [TERM, INT, QUIT]
    default: TERM
  stop_grace_seconds:
    description: Seconds to wait after O(stop_signal) before SIGKILL.
    type: float
    default: 10
  restart:
    description:
      - With O(state=started), stop a running server first (its configuration changed).
      - A running server is also restarted when O(command) or O(revision) differ from those it was started
        with (the pid file records their digest).
    type: bool
    default: false
  revision:
    description: What else the server depends on, such as a digest of its code; a change restarts it.
    type: str
    default: ''
  free_ports_timeout:
    description:
      - Seconds to wait before a start until every port in O(ports) can be bound; 0 does not wait.
      - For servers that move to other ports when theirs are taken (milvus-server does), which happens for a
        minute after a kill while the old connections linger in TIME_WAIT.
    type: float
    default: 0
  ready_timeout:
    description: Seconds to wait for the probe to pass after a start.
    type: float
    default: 120
  probe:
    description: The health question to ask.
    type: dict
    required: true
    suboptions:
      kind:
        description: C(neo4j), C(milvus) and C(redis) use the matching connection option.
        type: str
        required: true
        choices: [neo4j, milvus, redis, http, command]
      url:
        description: URL for O(probe.kind=http).
        type: str
      command:
        description: Command for O(probe.kind=command); exit status 0 means ready.
        type: list
        elements: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

EXAMPLES = r"""
- name: Sandbox | Start Redis
  sandbox_process:
    name: redis
    command: [/usr/bin/redis-server, /srv/sandbox/redis/redis.conf]
    pidfile: /srv/sandbox/redis/redis.pid
    logfile: /srv/sandbox/logs/redis.log
    ports: [6379]
    probe:
      kind: redis
    redis: "{{ redis_connection }}"

- name: Sandbox | Stop Milvus (it ignores SIGTERM for a long time)
  sandbox_process:
    name: milvus
    state: stopped
    pidfile: /srv/sandbox/milvus/milvus.pid
    logfile: /srv/sandbox/logs/milvus.log
    stop_grace_seconds: 5
    probe:
      kind: milvus
"""

RETURN = r"""
pid:
  description: Pid of the server (of the process that was stopped, for C(stopped)).
  returned: always
  type: int
  sample: 4242
action:
  description: What was (or in check mode would be) done, C(start), C(restart), C(stop) or C(none).
  returned: always
  type: str
  sample: start
health:
  description: What the health probe answered.
  returned: when the server runs
  type: str
  sample: Neo4j 5.26.19
was_running:
  description: Whether the server ran before the task.
  returned: always
  type: bool
running:
  description: Whether the recorded process is alive (C(status) only).
  returned: with O(state=status)
  type: bool
healthy:
  description: Whether the probe passed (C(status) only).
  returned: with O(state=status)
  type: bool
"""

import signal
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hybrid_migration import readiness, sandbox
from ansible.module_utils.hybrid_migration.argument_specs import (
    merge_specs,
    milvus_argument_spec,
    neo4j_argument_spec,
    redis_argument_spec,
)
from ansible.module_utils.hybrid_migration.errors import MigrationError
from ansible.module_utils.hybrid_migration.settings import (
    MilvusSettings,
    Neo4jSettings,
    RedisSettings,
)

STOP_SIGNALS = {"TERM": signal.SIGTERM, "INT": signal.SIGINT, "QUIT": signal.SIGQUIT}


def argument_spec() -> dict:
    return merge_specs(
        {
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["started", "stopped", "status"], "default": "started"},
            "command": {"type": "list", "elements": "str"},
            "pidfile": {"type": "path", "required": True},
            "logfile": {"type": "path", "required": True},
            "chdir": {"type": "path"},
            "environment": {"type": "dict", "default": {}, "no_log": True},
            "run_as": {"type": "str"},
            "ports": {"type": "list", "elements": "int", "default": []},
            "stop_signal": {"type": "str", "choices": list(STOP_SIGNALS), "default": "TERM"},
            "stop_grace_seconds": {"type": "float", "default": 10.0},
            "ready_timeout": {"type": "float", "default": 120.0},
            "restart": {"type": "bool", "default": False},
            "revision": {"type": "str", "default": ""},
            "free_ports_timeout": {"type": "float", "default": 0.0},
            "probe": {
                "type": "dict",
                "required": True,
                "options": {
                    "kind": {
                        "type": "str",
                        "required": True,
                        "choices": ["neo4j", "milvus", "redis", "http", "command"],
                    },
                    "url": {"type": "str"},
                    "command": {"type": "list", "elements": "str"},
                },
            },
        },
        neo4j_argument_spec(required=False),
        milvus_argument_spec(required=False),
        redis_argument_spec(required=False),
    )


def build_probe(params: dict) -> readiness.Probe:
    probe = params["probe"]
    kind = probe["kind"]
    if kind == "neo4j":
        return readiness.neo4j_probe(Neo4jSettings.from_mapping(params["neo4j"]))
    if kind == "milvus":
        return readiness.milvus_probe(MilvusSettings.from_mapping(params["milvus"]))
    if kind == "redis":
        return readiness.redis_probe(RedisSettings.from_mapping(params["redis"]))
    if kind == "http":
        return readiness.http_probe(probe["url"])
    return readiness.command_probe(probe["command"])


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        required_if=[("state", "started", ["command"])],
    )
    params = module.params
    spec = sandbox.ProcessSpec(
        name=params["name"],
        argv=params["command"] or [],
        pidfile=Path(params["pidfile"]),
        logfile=Path(params["logfile"]),
        cwd=Path(params["chdir"]) if params["chdir"] else None,
        environment={k: str(v) for k, v in params["environment"].items()},
        run_as=params["run_as"],
        ports=params["ports"],
        stop_signal=STOP_SIGNALS[params["stop_signal"]],
        stop_grace_seconds=params["stop_grace_seconds"],
        revision=params["revision"],
        free_ports_timeout=params["free_ports_timeout"],
    )
    try:
        if params["state"] == "started":
            result = sandbox.ensure_started(
                spec, build_probe(params), params["ready_timeout"], module.check_mode, restart=params["restart"]
            )
        elif params["state"] == "stopped":
            result = sandbox.ensure_stopped(spec, module.check_mode)
        else:
            result = sandbox.status(spec, build_probe(params))
    except MigrationError as error:
        module.fail_json(msg=str(error))
    before = "running" if result["was_running"] else "stopped"
    after = {"start": "running", "restart": "running (restarted)", "stop": "stopped"}.get(result["action"], before)
    module.exit_json(diff={"before": f"{spec.name}: {before}\n", "after": f"{spec.name}: {after}\n"}, **result)


if __name__ == "__main__":
    main()
