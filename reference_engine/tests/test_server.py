"""The HTTP contract, on a loopback server in a thread backed by in-memory stores."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from reference_engine.engine import Engine
from reference_engine.server import EngineServer

from .fakes import FakeGraph, FakeVectors, make_engine

ODD_ID = 'it\'s/a "naïve" 电影 %2F?#'


@dataclass
class Running:
    engine: Engine
    graph: FakeGraph
    vectors: FakeVectors
    port: int
    health: dict[str, Any]

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def request(
        self, method: str, path: str, body: bytes | None = None, connection: http.client.HTTPConnection | None = None
    ) -> tuple[int, bytes, str]:
        own = connection is None
        connection = connection or self.connect()
        try:
            connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read(), response.getheader("Content-Type") or ""
        finally:
            if own:
                connection.close()


@pytest.fixture
def running() -> Iterator[Running]:
    engine, graph, vectors, _ = make_engine()
    health: dict[str, Any] = {"status": 200, "body": {"status": "ok"}}
    server = EngineServer(("127.0.0.1", 0), engine, lambda: (health["status"], health["body"]))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Running(engine, graph, vectors, server.server_address[1], health)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        engine.close()


def request_count(engine: Engine, endpoint: str, status: str) -> float | None:
    """The request counter, waited for: the handler counts a request after it has sent the answer."""
    deadline = time.monotonic() + 2
    while True:
        value = engine.metrics.registry.get_sample_value(
            "engine_requests_total", {"endpoint": endpoint, "status": status}
        )
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(0.005)


def put_embedding(running: Running, item_id: str, vector: list[float]) -> tuple[int, Any]:
    body = json.dumps({"embedding": vector}).encode()
    status, payload, _ = running.request("PUT", f"/media/{quote(item_id, safe='')}/embedding", body)
    return status, json.loads(payload)


def test_put_and_similar_with_an_id_that_needs_encoding(running: Running) -> None:
    running.engine.serve("dual_write", 1, "test")
    for item_id, vector in (("a", [0.9, 0.1, 0.0]), ("b", [0.8, 0.2, 0.0]), ("c", [0.0, 1.0, 0.0])):
        assert put_embedding(running, item_id, vector)[0] == 200
    status, answer = put_embedding(running, ODD_ID, [1.0, 0.0, 0.0])
    assert status == 200
    assert answer["id"] == ODD_ID
    assert answer["mode"] == "dual_write"
    assert answer["milvus"] == "written"
    assert running.graph.items[ODD_ID][0] == [1.0, 0.0, 0.0]
    assert ODD_ID in running.vectors.rows

    status, payload, content_type = running.request("GET", f"/media/{quote(ODD_ID, safe='')}/similar?k=3")
    assert status == 200
    assert content_type == "application/json"
    answer = json.loads(payload)
    assert answer["id"] == ODD_ID
    assert answer["served_by"] == "neo4j"
    assert [hit["id"] for hit in answer["results"]] == ["a", "b", "c"]


def test_similar_errors(running: Running) -> None:
    put_embedding(running, "a", [1.0, 0.0, 0.0])
    status, payload, _ = running.request("GET", "/media/a/similar?k=0")
    assert status == 400
    assert "k must be" in json.loads(payload)["error"]
    assert running.request("GET", "/media/a/similar?k=ten")[0] == 400
    status, payload, _ = running.request("GET", "/media/nope/similar?k=3")
    assert status == 404
    assert "nope" in json.loads(payload)["error"]


def test_similar_defaults_to_ten(running: Running) -> None:
    for number in range(12):
        put_embedding(running, f"m{number}", [1.0, float(number), 0.5])
    status, payload, _ = running.request("GET", "/media/m0/similar")
    assert status == 200
    assert len(json.loads(payload)["results"]) == 10


def test_mode(running: Running) -> None:
    running.engine.serve("hybrid", 6, "control_record")
    status, payload, _ = running.request("GET", "/mode")
    assert status == 200
    described = json.loads(payload)
    assert described["instance"] == "engine-test"
    assert described["mode"] == "hybrid"
    assert described["generation"] == 6
    assert described["read_source"] == "milvus"
    assert described["writes_to_milvus"] is True


def test_metrics(running: Running) -> None:
    running.engine.serve("dual_write", 1, "test")
    put_embedding(running, "a", [1.0, 0.0, 0.0])
    assert request_count(running.engine, "write", "200") == 1
    status, payload, content_type = running.request("GET", "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    text = payload.decode()
    assert "dual_write_attempts_total 1.0" in text
    assert 'engine_requests_total{endpoint="write",status="200"} 1.0' in text
    assert 'engine_storage_mode{mode="dual_write"} 1.0' in text


def test_healthz_passes_on_the_health_callable(running: Running) -> None:
    status, payload, _ = running.request("GET", "/healthz")
    assert (status, json.loads(payload)) == (200, {"status": "ok"})
    running.health.update(status=503, body={"status": "neo4j unreachable"})
    status, payload, _ = running.request("GET", "/healthz")
    assert (status, json.loads(payload)) == (503, {"status": "neo4j unreachable"})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b'{"embedding": [1, 2]}', "dimension 2"),
        (b'{"embedding": [1, 10' + b"0" * 400 + b", 0]}", "too large"),
        (b"[1, 0, 0]", "JSON object"),
    ],
)
def test_bad_write_body_is_400(running: Running, body: bytes, message: str) -> None:
    status, payload, _ = running.request("PUT", "/media/a/embedding", body)
    assert status == 400
    assert message in json.loads(payload)["error"]
    assert running.graph.writes == []
    assert request_count(running.engine, "write", "400") == 1


def test_store_failure_is_503(running: Running) -> None:
    def broken(item_id: str, embedding: list[float], updated_at: int) -> None:
        raise ConnectionError("neo4j is down")

    running.graph.write = broken  # type: ignore[method-assign]
    status, payload, _ = running.request("PUT", "/media/a/embedding", b'{"embedding": [1, 0, 0]}')
    assert status == 503
    assert "ConnectionError: neo4j is down" in json.loads(payload)["error"]


def test_keep_alive_survives_an_unknown_route_with_a_body(running: Running) -> None:
    connection = running.connect()
    try:
        # A body that would parse as a request line if the server left it unread.
        body = b"GET /mode HTTP/1.1\r\nHost: x\r\n\r\n"
        status, payload, _ = running.request("PUT", "/nowhere", body, connection)
        assert status == 404
        assert "no route PUT /nowhere" in json.loads(payload)["error"]
        socket = connection.sock
        assert socket is not None
        status, payload, _ = running.request("PUT", "/media/a/embedding", b'{"embedding": [1, 0, 0]}', connection)
        assert status == 200
        assert json.loads(payload)["id"] == "a"
        status, payload, _ = running.request("GET", "/media/a/similar?k=3", None, connection)
        assert status == 200
        assert json.loads(payload)["results"] == []
        assert connection.sock is socket, "the server closed the kept-alive connection"
    finally:
        connection.close()
