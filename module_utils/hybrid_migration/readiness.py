"""Health probes for the sandbox servers: each asks the real server, not the port.

A probe returns a short description of what answered (a version, "PONG") or
raises ``NotReady`` with the reason, which the supervisor shows on timeout.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Callable

from .connections import open_milvus, open_neo4j, open_redis
from .errors import MigrationError
from .settings import MilvusSettings, Neo4jSettings, RedisSettings

Probe = Callable[[], str]


class NotReady(Exception):
    """The server did not (yet) answer its health question."""


def neo4j_probe(settings: Neo4jSettings) -> Probe:
    """A Bolt query that returns the kernel version."""

    def probe() -> str:
        try:
            driver = open_neo4j(settings)
        except (MigrationError, Exception) as error:
            raise NotReady(str(error)) from error
        try:
            records, _, _ = driver.execute_query(
                "CALL dbms.components() YIELD versions RETURN versions[0] AS version",
                database_="system",
            )
            return f"Neo4j {records[0]['version']}"
        except Exception as error:
            raise NotReady(f"Neo4j query failed: {error}") from error
        finally:
            driver.close()

    return probe


def milvus_probe(settings: MilvusSettings) -> Probe:
    """A Milvus version call plus a collection listing (proves the coordinators are up)."""

    def probe() -> str:
        try:
            client = open_milvus(settings)
            version = client.get_server_version()
            client.list_collections()
            client.close()
        except Exception as error:
            raise NotReady(str(error)) from error
        return f"Milvus {version}"

    return probe


def redis_probe(settings: RedisSettings) -> Probe:
    """PING with the configured credentials."""

    def probe() -> str:
        try:
            client = open_redis(settings)
            version = client.info("server").get("redis_version", "?")
            client.close()
        except Exception as error:
            raise NotReady(str(error)) from error
        return f"Redis {version}"

    return probe


def http_probe(url: str, timeout: float = 5.0) -> Probe:
    """An HTTP GET that must answer 2xx (Prometheus and Pushgateway ``/-/ready``)."""

    def probe() -> str:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback URL from inventory
                status = response.status
        except Exception as error:
            raise NotReady(f"GET {url}: {error}") from error
        if not 200 <= status < 300:
            raise NotReady(f"GET {url}: HTTP {status}")
        return f"HTTP {status} from {url}"

    return probe


def command_probe(argv: list[str], timeout: float = 10.0) -> Probe:
    """A command that exits 0 when ready (``pg_isready``)."""

    def probe() -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise NotReady(f"{argv[0]}: {error}") from error
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            raise NotReady(f"{argv[0]} exited {done.returncode}: {output}")
        return output

    return probe
