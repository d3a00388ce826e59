from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from ansible.module_utils.hybrid_migration.engine_control import config_digest
from ansible.module_utils.hybrid_migration.engine_mode import (
    ConfigFileFleet,
    ModeSwitchFailed,
    SwitchOptions,
    SwitchResult,
    check_reads,
    config_file_text,
    read_config_file,
    refuse_skip,
    switch_by_config_file,
)
from ansible.module_utils.hybrid_migration.errors import TerminalError

Route = Callable[[str], tuple[int, Any]]


@pytest.fixture
def serve() -> Iterator[Callable[[Route], str]]:
    """Start loopback HTTP servers answering GET with ``route(path) -> (status, json body)``."""
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(route: Route) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = route(self.path)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        servers.append((httpd, thread))
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd, thread in servers:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def refused() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def follower(path: Path) -> Route:
    """An instance that serves whatever the config file says, as the engine does after a reload."""

    def route(request: str) -> tuple[int, Any]:
        if request != "/mode":
            return 404, {"error": "no route"}
        if not path.exists():
            return 200, {"mode": "neo4j_only", "config_digest": ""}
        text = path.read_text(encoding="utf-8")
        mode, _ = read_config_file(path)
        return 200, {"mode": mode, "config_digest": config_digest(text)}

    return route


def stuck(mode: str, digest: str = "0123456789abcdef") -> Route:
    """An instance that never reloads."""
    return lambda request: (200, {"mode": mode, "config_digest": digest})


class Recorder:
    """Stands in for subprocess.run: records the reload commands and succeeds."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(command))
        return subprocess.CompletedProcess(command, 0, "", "")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "engine" / "engine.yml"
    path.parent.mkdir()
    path.write_text(config_file_text("dual_write", 3), encoding="utf-8")
    return path


RELOAD = ["systemctl", "reload", "recommendation-engine"]


# refuse_skip


def test_refuse_skip_over_dual_write() -> None:
    with pytest.raises(TerminalError) as raised:
        refuse_skip("neo4j_only", "hybrid", allow_skip=False)
    message = str(raised.value)
    assert message.startswith("refusing to flip neo4j_only -> hybrid: it skips dual_write, shadow. ")
    assert "writes made while the engine was not dual-writing are not in Milvus" in message
    assert message.endswith(", or set allow_skip (force)")


def test_refuse_skip_over_dual_write_alone() -> None:
    with pytest.raises(TerminalError, match=r"it skips dual_write\. writes made while"):
        refuse_skip("neo4j_only", "shadow", allow_skip=False)


def test_refuse_skip_over_shadow_only() -> None:
    with pytest.raises(TerminalError) as raised:
        refuse_skip("dual_write", "hybrid", allow_skip=False)
    message = str(raised.value)
    assert message == (
        "refusing to flip dual_write -> hybrid: it skips shadow. Milvus's answers have not been compared "
        "with Neo4j's; run shadow.yml under traffic first, or set allow_skip (force)"
    )
    assert "dual-writing" not in message


@pytest.mark.parametrize(("current", "target"), [("neo4j_only", "hybrid"), ("neo4j_only", "shadow")])
def test_refuse_skip_allowed_when_forced(current: str, target: str) -> None:
    assert refuse_skip(current, target, allow_skip=True) is None


@pytest.mark.parametrize(
    ("current", "target"),
    [("hybrid", "neo4j_only"), ("hybrid", "dual_write"), ("shadow", "neo4j_only"), ("dual_write", "shadow")],
)
def test_refuse_skip_lets_backward_and_single_steps_through(current: str, target: str) -> None:
    assert refuse_skip(current, target, allow_skip=False) is None


# The config file


def test_config_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "engine.yml"
    text = config_file_text("shadow", 7)
    assert "storage_mode: shadow\n" in text
    assert "mode_generation: 7\n" in text
    path.write_text(text, encoding="utf-8")
    assert read_config_file(path) == ("shadow", 7)


def test_read_config_file_missing(tmp_path: Path) -> None:
    assert read_config_file(tmp_path / "absent.yml") == ("neo4j_only", 0)


def test_read_config_file_without_keys(tmp_path: Path) -> None:
    path = tmp_path / "engine.yml"
    path.write_text("# nothing set yet\n", encoding="utf-8")
    assert read_config_file(path) == ("neo4j_only", 0)


def test_read_config_file_broken_yaml(tmp_path: Path) -> None:
    path = tmp_path / "engine.yml"
    path.write_text("storage_mode: [shadow\n", encoding="utf-8")
    with pytest.raises(TerminalError, match=rf"engine config file {path} is unreadable"):
        read_config_file(path)


def test_read_config_file_directory(tmp_path: Path) -> None:
    with pytest.raises(TerminalError, match="is unreadable"):
        read_config_file(tmp_path)


# switch_by_config_file


def test_switch_writes_reloads_and_waits_for_every_endpoint(config: Path, serve: Callable[[Route], str]) -> None:
    endpoints = [serve(follower(config)), serve(follower(config)) + "/"]
    run = Recorder()
    fleet = ConfigFileFleet(config, RELOAD, endpoints, request_timeout=2, run=run)
    result = switch_by_config_file(fleet, SwitchOptions("shadow", timeout=5, min_instances=2))
    assert config.read_text(encoding="utf-8") == config_file_text("shadow", 4)
    assert read_config_file(config) == ("shadow", 4)
    assert run.calls == [RELOAD]
    assert result.changed is True
    assert result.reverted is False
    assert (result.previous_mode, result.mode, result.generation) == ("dual_write", "shadow", 4)
    assert result.acknowledged == [{"address": e, "propagation_ms": None} for e in endpoints]
    assert result.instances == [{"address": e} for e in endpoints]
    assert result.message == f"dual_write -> shadow: 2 instance(s) reloaded {config}"
    assert result.started_epoch_ms > 0
    assert result.seconds < 5
    assert result.as_dict()["diff"] == {"before": "storage_mode: dual_write\n", "after": "storage_mode: shadow\n"}


def test_switch_from_missing_file_starts_at_generation_one(tmp_path: Path, serve: Callable[[Route], str]) -> None:
    path = tmp_path / "engine.yml"
    fleet = ConfigFileFleet(path, [], [serve(follower(path))], run=Recorder())
    result = switch_by_config_file(fleet, SwitchOptions("dual_write", timeout=5))
    assert read_config_file(path) == ("dual_write", 1)
    assert (result.previous_mode, result.generation, result.changed) == ("neo4j_only", 1, True)
    assert fleet.run.calls == []  # type: ignore[attr-defined]
    assert path.stat().st_mode & 0o777 == 0o644


def test_switch_reverts_when_an_endpoint_never_follows(config: Path, serve: Callable[[Route], str]) -> None:
    good = serve(follower(config))
    behind = serve(stuck("dual_write", config_digest(config.read_text(encoding="utf-8"))))
    run = Recorder()
    fleet = ConfigFileFleet(config, RELOAD, [good, behind], request_timeout=1, run=run)
    with pytest.raises(ModeSwitchFailed) as raised:
        switch_by_config_file(fleet, SwitchOptions("shadow", timeout=0.3))
    assert isinstance(raised.value, TerminalError)
    assert str(raised.value) == (
        f"{behind} did not serve shadow within 0.3 s; restored dual_write in {config} and reloaded"
    )
    # The previous mode is back, under a generation newer than the failed flip's.
    assert read_config_file(config) == ("dual_write", 5)
    assert config.read_text(encoding="utf-8") == config_file_text("dual_write", 5)
    assert run.calls == [RELOAD, RELOAD]
    result = raised.value.result
    assert result["reverted"] is True
    assert result["changed"] is True
    assert (result["previous_mode"], result["mode"], result["generation"]) == ("dual_write", "dual_write", 5)
    assert result["acknowledged"] == [{"address": good, "propagation_ms": None}]
    assert result["diff"]["after"] == "storage_mode: dual_write\n"


def test_switch_needs_the_digest_of_the_new_file(config: Path, serve: Callable[[Route], str]) -> None:
    # Reports the right mode but from another file (a reload that read a stale copy).
    wrong_file = serve(stuck("shadow", config_digest(config_file_text("shadow", 99))))
    fleet = ConfigFileFleet(config, [], [wrong_file], request_timeout=1, run=Recorder())
    with pytest.raises(ModeSwitchFailed, match="did not serve shadow"):
        switch_by_config_file(fleet, SwitchOptions("shadow", timeout=0.2))
    assert read_config_file(config) == ("dual_write", 5)


def test_switch_counts_unreachable_and_failing_endpoints_as_behind(
    config: Path, serve: Callable[[Route], str], refused: str
) -> None:
    failing = serve(lambda request: (503, {"error": "starting"}))
    fleet = ConfigFileFleet(config, [], [refused, failing], request_timeout=1, run=Recorder())
    with pytest.raises(ModeSwitchFailed) as raised:
        switch_by_config_file(fleet, SwitchOptions("shadow", timeout=0.2))
    assert str(raised.value).startswith(f"{refused}, {failing} did not serve shadow")
    assert raised.value.result["acknowledged"] == []


def test_switch_check_mode_writes_nothing(config: Path, serve: Callable[[Route], str]) -> None:
    before = config.read_bytes()
    mtime = config.stat().st_mtime_ns
    run = Recorder()
    fleet = ConfigFileFleet(config, RELOAD, [serve(stuck("dual_write"))], run=run)
    result = switch_by_config_file(fleet, SwitchOptions("shadow", check_mode=True))
    assert result.changed is True
    assert result.reverted is False
    assert (result.previous_mode, result.mode, result.generation) == ("dual_write", "shadow", 3)
    assert result.message == f"would write storage_mode: shadow to {config} and reload 1 instance(s)"
    assert config.read_bytes() == before
    assert config.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in config.parent.iterdir()) == ["engine.yml"]
    assert run.calls == []


def test_switch_check_mode_does_not_create_the_file(tmp_path: Path) -> None:
    path = tmp_path / "engine.yml"
    fleet = ConfigFileFleet(path, RELOAD, ["http://127.0.0.1:1"], run=Recorder())
    result = switch_by_config_file(fleet, SwitchOptions("dual_write", check_mode=True))
    assert result.changed is True
    assert not path.exists()


def test_switch_already_in_mode_changes_nothing(config: Path) -> None:
    before = config.read_bytes()
    run = Recorder()
    fleet = ConfigFileFleet(config, RELOAD, ["http://127.0.0.1:1"], run=run)
    result = switch_by_config_file(fleet, SwitchOptions("dual_write"))
    assert result.changed is False
    assert result.message == f"already dual_write in {config}"
    assert config.read_bytes() == before
    assert run.calls == []


def test_switch_refuses_skip_before_writing(config: Path) -> None:
    before = config.read_bytes()
    run = Recorder()
    fleet = ConfigFileFleet(config, RELOAD, ["http://127.0.0.1:1"], run=run)
    with pytest.raises(TerminalError, match="refusing to flip dual_write -> hybrid: it skips shadow"):
        switch_by_config_file(fleet, SwitchOptions("hybrid"))
    assert config.read_bytes() == before
    assert run.calls == []


def test_switch_refuses_unknown_mode(config: Path) -> None:
    fleet = ConfigFileFleet(config, [], ["http://127.0.0.1:1"], run=Recorder())
    with pytest.raises(TerminalError, match="unknown storage mode 'milvus'"):
        switch_by_config_file(fleet, SwitchOptions("milvus"))


def test_switch_refuses_too_few_endpoints(config: Path) -> None:
    before = config.read_bytes()
    fleet = ConfigFileFleet(config, [], ["http://127.0.0.1:1"], run=Recorder())
    with pytest.raises(TerminalError, match="1 engine endpoint\\(s\\) given, min_instances is 2"):
        switch_by_config_file(fleet, SwitchOptions("shadow", min_instances=2))
    assert config.read_bytes() == before


def test_reload_command_failing_raises_terminal(config: Path) -> None:
    fleet = ConfigFileFleet(config, ["false"], ["http://127.0.0.1:1"])
    with pytest.raises(TerminalError, match=r"^reload command false exited 1: $"):
        switch_by_config_file(fleet, SwitchOptions("shadow", timeout=0.2))


def test_reload_command_failure_names_its_output(config: Path) -> None:
    command = [sys.executable, "-c", "import sys; sys.stderr.write('unit not found\\n'); sys.exit(5)"]
    fleet = ConfigFileFleet(config, command, ["http://127.0.0.1:1"])
    with pytest.raises(TerminalError) as raised:
        fleet.write("shadow", 4)
    assert not isinstance(raised.value, ModeSwitchFailed)
    assert str(raised.value).endswith("exited 5: unit not found")


def test_write_runs_reload_and_returns_the_digest(config: Path) -> None:
    fleet = ConfigFileFleet(config, ["true"], [])
    digest = fleet.write("hybrid", 9)
    assert digest == config_digest(config_file_text("hybrid", 9))
    assert read_config_file(config) == ("hybrid", 9)


def test_switch_result_as_dict() -> None:
    result = SwitchResult(changed=True, previous_mode="shadow", mode="hybrid", generation=6)
    data = result.as_dict()
    assert data["changed"] is True
    assert data["generation"] == 6
    assert data["diff"] == {"before": "storage_mode: shadow\n", "after": "storage_mode: hybrid\n"}


# check_reads


def similar_server(served_by: str) -> Route:
    seen: list[str] = []

    def route(request: str) -> tuple[int, Any]:
        parts = urlsplit(request)
        segments = parts.path.split("/")
        if len(segments) != 4 or segments[1] != "media" or segments[3] != "similar":
            return 404, {"error": "no route"}
        item_id = unquote(segments[2])
        seen.append(request)
        if item_id == "gone":
            return 404, {"error": "no item gone"}
        return 200, {"id": item_id, "served_by": served_by, "neighbours": []}

    route.seen = seen  # type: ignore[attr-defined]
    return route


def test_check_reads_passes_when_the_mode_source_answers(serve: Callable[[Route], str]) -> None:
    neo4j = similar_server("neo4j")
    endpoints = [serve(neo4j), serve(similar_server("neo4j"))]
    report = check_reads(endpoints, ["m-1", "a/b"], "shadow", timeout=2)
    assert report == {"expected_source": "neo4j", "checked": 4, "failed": 0, "passed": True, "failures": []}
    assert "/media/a%2Fb/similar?k=10" in neo4j.seen  # type: ignore[attr-defined]


def test_check_reads_fails_when_hybrid_is_still_served_by_neo4j(serve: Callable[[Route], str]) -> None:
    milvus, neo4j = serve(similar_server("milvus")), serve(similar_server("neo4j"))
    report = check_reads([milvus, neo4j], ["m-1"], "hybrid", timeout=2)
    assert report["expected_source"] == "milvus"
    assert (report["checked"], report["failed"], report["passed"]) == (2, 1, False)
    assert report["failures"] == [
        {"endpoint": neo4j, "id": "m-1", "status": 200, "served_by": "neo4j", "ok": False, "error": None}
    ]


def test_check_reads_reports_http_errors_and_unreachable(serve: Callable[[Route], str], refused: str) -> None:
    endpoint = serve(similar_server("milvus"))
    report = check_reads([endpoint, refused], ["gone"], "hybrid", timeout=2)
    assert report["failed"] == 2
    missing, unreachable = report["failures"]
    assert (missing["status"], missing["served_by"], missing["error"]) == (404, None, "no item gone")
    assert unreachable["status"] == 0
    assert unreachable["endpoint"] == refused
    assert "did not answer" in unreachable["error"]


def test_check_reads_caps_failures_at_ten(refused: str) -> None:
    report = check_reads([refused], [f"m-{n}" for n in range(12)], "dual_write", timeout=1)
    assert (report["checked"], report["failed"], len(report["failures"])) == (12, 12, 10)


def test_check_reads_with_nothing_to_check_does_not_pass() -> None:
    assert check_reads([], ["m-1"], "hybrid")["passed"] is False


def test_check_reads_refuses_unknown_mode() -> None:
    with pytest.raises(TerminalError, match="unknown storage mode"):
        check_reads(["http://127.0.0.1:1"], ["m-1"], "milvus_only")
