"""The pure parts of the load generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reference_engine.load import last_writes, load_vector, percentile


def test_load_vector_is_reproducible() -> None:
    assert load_vector(7, 3, 16) == load_vector(7, 3, 16)
    assert load_vector(7, 3, 16) != load_vector(7, 4, 16)
    assert load_vector(7, 3, 16) != load_vector(8, 3, 16)


def test_load_vector_is_unit_length_and_float32_exact() -> None:
    vector = load_vector(12345, 99, 768)
    assert len(vector) == 768
    assert all(type(x) is float for x in vector)
    assert all(float(np.float32(x)) == x for x in vector)
    assert float(np.linalg.norm(np.asarray(vector, dtype=np.float64))) == pytest.approx(1.0, abs=1e-6)
    # Survives a JSON round trip unchanged, which the verify step relies on.
    assert json.loads(json.dumps(vector)) == vector


@pytest.mark.parametrize(
    ("share", "expected"),
    [(0.0, 1.0), (0.5, 6.0), (0.9, 10.0), (0.99, 10.0), (1.0, 10.0)],
)
def test_percentile(share: float, expected: float) -> None:
    assert percentile([float(x) for x in range(1, 11)], share) == expected


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile([], 0.99) == 0.0


def test_percentile_of_one_value() -> None:
    assert percentile([42.0], 0.5) == 42.0


def test_last_writes_keeps_the_latest_per_id(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    entries = [
        {"id": "a", "n": 1, "updated_at": 100, "mode": "dual_write"},
        {"id": "b", "n": 2, "updated_at": 110, "mode": "dual_write"},
        {"id": "a", "n": 3, "updated_at": 300, "mode": "shadow"},
        {"id": "a", "n": 4, "updated_at": 200, "mode": "shadow"},
        {"id": "b", "n": 5, "updated_at": 110, "mode": "hybrid"},
    ]
    journal.write_text("\n".join(json.dumps(entry) for entry in entries) + "\n\n", encoding="utf-8")
    latest = last_writes(journal)
    assert set(latest) == {"a", "b"}
    assert latest["a"]["n"] == 3
    # Same timestamp: the later acknowledgement wins.
    assert latest["b"]["n"] == 5


def test_run_sends_at_the_requested_rates_and_reports_no_backlog(tmp_path) -> None:
    """An open-loop run against a tiny local server sends about rate x duration of each kind."""
    import argparse
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from reference_engine.load import LoadRun

    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return

        def _ok(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._ok(b'{"updated_at": 1, "mode": "neo4j_only"}')

        def do_GET(self) -> None:
            self._ok(b'{"served_by": "neo4j"}')

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        arguments = argparse.Namespace(
            endpoint=[f"http://127.0.0.1:{server.server_address[1]}"],
            writes_per_second=40.0,
            searches_per_second=20.0,
            duration=1.0,
            stop_file=None,
            journal=tmp_path / "journal.jsonl",
            run_seed=3,
            dimension=4,
            workers=8,
        )
        summary = LoadRun(arguments, ["media-0000001", "media-0000002"]).run()
    finally:
        server.shutdown()
    assert 36 <= summary["writes"]["sent"] <= 44
    assert 18 <= summary["searches"]["sent"] <= 22
    assert summary["failed"] == 0, summary["errors"]
    assert summary["backlog_at_stop"] == 0
    assert summary["searches"]["served_by"] == {"neo4j": summary["searches"]["ok"]}
