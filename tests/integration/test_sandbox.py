"""The sandbox playbook on the real stack: idempotent up, status, down by pid, conflicts."""

from __future__ import annotations

import json
import re
import socket

import psutil
import pytest

from .conftest import SANDBOX, SECRETS, run_playbook, stats, task_results

LIGHT = '{"sandbox_services": ["pushgateway", "prometheus"]}'


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def recorded_pid(name: str) -> int:
    return json.loads((SANDBOX / name / f"{name}.pid").read_text())["pid"]


def test_status_reports_every_server_healthy() -> None:
    done = run_playbook(
        "playbooks/sandbox.yml", "-e", "sandbox_state=status", "-e", "sandbox_status_require_healthy=true"
    )
    assert done.returncode == 0, done.stdout[-2000:]
    results = task_results(done, "Ask each server")[0]["results"]
    assert {r["item"]["name"]: r["healthy"] for r in results} == {
        name: True
        for name in ("redis", "postgres", "neo4j", "milvus", "pushgateway", "prometheus", "engine-1", "engine-2")
    }


def test_up_on_a_healthy_stack_changes_nothing_and_prints_no_secret() -> None:
    done = run_playbook("playbooks/sandbox.yml", "--diff", "-vvv", callback="default")
    assert done.returncode == 0, done.stdout[-2000:]
    recap = re.search(r"^localhost\s+: ok=\d+\s+changed=(\d+)", done.stdout, re.MULTILINE)
    assert recap and recap.group(1) == "0", done.stdout[-1500:]
    for secret in SECRETS:
        assert secret not in done.stdout


def test_check_mode_on_a_healthy_stack_predicts_no_change() -> None:
    done = run_playbook("playbooks/sandbox.yml", "--check", "-e", "sandbox_install=false")
    assert done.returncode == 0
    assert stats(done)["changed"] == 0


def test_down_stops_exactly_what_up_started_and_up_brings_it_back() -> None:
    pids = {name: recorded_pid(name) for name in ("pushgateway", "prometheus")}
    down = run_playbook("playbooks/sandbox.yml", "-e", "sandbox_state=down", "-e", LIGHT)
    assert down.returncode == 0
    assert stats(down)["changed"] == 1  # one task, looping over both servers
    assert not any(psutil.pid_exists(pid) for pid in pids.values())
    assert not port_is_open(9092) and not port_is_open(9090)
    assert port_is_open(7687) and port_is_open(19530), "down touched servers it was not asked to stop"

    status = run_playbook(
        "playbooks/sandbox.yml", "-e", "sandbox_state=status", "-e", "sandbox_status_require_healthy=true", "-e", LIGHT
    )
    assert status.returncode != 0
    assert "not healthy: pushgateway, prometheus" in task_results(status, "Require every server")[0]["msg"]

    predicted = run_playbook("playbooks/sandbox.yml", "--check", "-e", "sandbox_install=false", "-e", LIGHT)
    assert predicted.returncode == 0 and stats(predicted)["changed"] >= 2
    assert not port_is_open(9092), "check mode started a server"

    up = run_playbook("playbooks/sandbox.yml", "-e", "sandbox_install=false", "-e", LIGHT)
    assert up.returncode == 0, up.stdout[-2000:]
    assert port_is_open(9092) and port_is_open(9090)
    again = run_playbook("playbooks/sandbox.yml", "-e", "sandbox_install=false", "-e", LIGHT)
    assert stats(again)["changed"] == 0


@pytest.fixture()
def pushgateway_down():
    run_playbook("playbooks/sandbox.yml", "-e", "sandbox_state=down", "-e", '{"sandbox_services": ["pushgateway"]}')
    yield
    run_playbook("playbooks/sandbox.yml", "-e", "sandbox_install=false", "-e", '{"sandbox_services": ["pushgateway"]}')


def test_a_port_taken_by_another_process_fails_with_its_owner(pushgateway_down) -> None:
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 9092))
        squatter.listen()
        done = run_playbook(
            "playbooks/sandbox.yml", "-e", "sandbox_install=false", "-e", '{"sandbox_services": ["pushgateway"]}'
        )
    assert done.returncode != 0
    failure = task_results(done, "Start the Pushgateway")[0]
    assert "port 9092 is already in use by pid" in failure["msg"]
    assert "which the sandbox did not start" in failure["msg"]
