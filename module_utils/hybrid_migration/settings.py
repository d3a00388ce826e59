"""Connection and data-model settings, built from module parameters.

Every module receives the same nested dictionaries (``neo4j``, ``milvus``,
``postgres``, ``redis``, ``source``); these dataclasses give them types and one
place to validate them. Passwords are kept out of ``repr`` so that a settings
object printed in a traceback or a log never shows a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar
from urllib.parse import urlparse

from .errors import TerminalError

SettingsT = TypeVar("SettingsT")


def _from_mapping(cls: type[SettingsT], values: Mapping[str, Any] | None) -> SettingsT:
    """Build a settings dataclass, ignoring ``None`` so defaults apply."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    given = {k: v for k, v in (values or {}).items() if k in known and v is not None}
    return cls(**given)


@dataclass(frozen=True)
class Neo4jSettings:
    """How to reach the Neo4j source."""

    uri: str = "bolt://127.0.0.1:7687"
    user: str = "neo4j"
    password: str = field(default="", repr=False)
    database: str = "neo4j"
    connect_timeout: float = 10.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "Neo4jSettings":
        settings = _from_mapping(cls, values)
        scheme = urlparse(settings.uri).scheme
        if scheme not in {"bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"}:
            raise TerminalError(f"neo4j.uri {settings.uri!r} is not a bolt:// or neo4j:// URI")
        return settings


@dataclass(frozen=True)
class MilvusSettings:
    """How to reach the Milvus target."""

    uri: str = "http://127.0.0.1:19530"
    token: str = field(default="", repr=False)
    user: str = ""
    password: str = field(default="", repr=False)
    db_name: str = "default"
    timeout: float = 10.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "MilvusSettings":
        settings = _from_mapping(cls, values)
        if urlparse(settings.uri).scheme not in {"http", "https", "tcp", "grpc", "unix"}:
            raise TerminalError(f"milvus.uri {settings.uri!r} is not an http(s):// or tcp:// URI")
        return settings


@dataclass(frozen=True)
class PostgresSettings:
    """How to reach the PostgreSQL AgentDB target."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "migration"
    password: str = field(default="", repr=False)
    database: str = "agentdb"
    connect_timeout: int = 10
    sslmode: str = "prefer"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "PostgresSettings":
        return _from_mapping(cls, values)


@dataclass(frozen=True)
class RedisSettings:
    """How to reach the Redis AgentDB source, and where its keys live."""

    host: str = "127.0.0.1"
    port: int = 6379
    password: str = field(default="", repr=False)
    username: str = ""
    db: int = 0
    key_prefix: str = "agentdb:"
    connect_timeout: float = 10.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "RedisSettings":
        return _from_mapping(cls, values)


@dataclass(frozen=True)
class SourceModel:
    """Where the embeddings sit in the Neo4j graph (MISSION.md data model)."""

    label: str = "Media"
    id_property: str = "id"
    embedding_property: str = "embedding"
    updated_at_property: str = "updated_at"
    vector_index: str = "media_embedding"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "SourceModel":
        model = _from_mapping(cls, values)
        for name in ("label", "id_property", "embedding_property", "updated_at_property"):
            value = getattr(model, name)
            if not value or "`" in value:
                raise TerminalError(f"source.{name} {value!r} must be a non-empty name without backticks")
        return model


def quote_identifier(name: str) -> str:
    """Quote a label or property name for Cypher; names were checked for backticks."""
    return f"`{name}`"
