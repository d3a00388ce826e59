"""The HTTP contract of MISSION.md on the standard library's threading server."""

from __future__ import annotations

import json
import logging
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .engine import BadRequest, Engine, NotFound

log = logging.getLogger("reference_engine")

MEDIA_PATH = re.compile(r"^/media/(?P<id>[^/]+)/(?P<action>embedding|similar)$")
MAX_BODY_BYTES = 1 << 20


class EngineServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], engine: Engine, health: Any) -> None:
        super().__init__(address, EngineHandler)
        self.engine = engine
        self.health = health


class EngineHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EngineServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        started = time.perf_counter()
        parts = urlsplit(self.path)
        endpoint = parts.path
        status, body, content_type = 404, {"error": f"no route {method} {parts.path}"}, "application/json"
        try:
            raw = self._read_body()
            match = MEDIA_PATH.match(parts.path)
            if match and method == "PUT" and match["action"] == "embedding":
                endpoint = "write"
                status, body = 200, self.server.engine.write(unquote(match["id"]), _json(raw))
            elif match and method == "GET" and match["action"] == "similar":
                endpoint = "similar"
                query = parse_qs(parts.query)
                k = _int(query.get("k", ["10"])[0], "k")
                status, body = 200, self.server.engine.similar(unquote(match["id"]), k)
            elif method == "GET" and parts.path == "/mode":
                status, body = 200, self.server.engine.describe()
            elif method == "GET" and parts.path == "/metrics":
                status, body, content_type = 200, self.server.engine.metrics.exposition(), "text/plain; version=0.0.4"
            elif method == "GET" and parts.path == "/healthz":
                status, body = self.server.health()
        except BadRequest as error:
            status, body = 400, {"error": str(error)}
        except NotFound as error:
            status, body = 404, {"error": str(error)}
        except Exception as error:
            log.warning("%s %s failed: %s", method, parts.path, error)
            status, body = 503, {"error": f"{type(error).__name__}: {error}"}
        self._send(status, body, content_type)
        if endpoint in {"write", "similar"}:
            metrics = self.server.engine.metrics
            metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
            metrics.request_latency.labels(endpoint=endpoint).observe((time.perf_counter() - started) * 1000)

    def _read_body(self) -> bytes:
        """Read the whole body whatever the route, so the next request on the connection starts clean."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any, content_type: str) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as error:
        raise BadRequest(f"body is not JSON: {error}") from error


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError as error:
        raise BadRequest(f"{name} must be an integer") from error
