"""Argument-spec builders shared by every module (community.postgresql pattern).

Each returns a fragment of an Ansible argument spec as plain dictionaries, so
this file needs no Ansible import. Every secret is ``no_log``.
"""

from __future__ import annotations

from typing import Any

Spec = dict[str, Any]


def neo4j_argument_spec(required: bool = True) -> Spec:
    """The ``neo4j`` option: connection to the source graph."""
    return {
        "neo4j": {
            "type": "dict",
            "required": required,
            "options": {
                "uri": {"type": "str", "default": "bolt://127.0.0.1:7687"},
                "user": {"type": "str", "default": "neo4j"},
                "password": {"type": "str", "required": True, "no_log": True},
                "database": {"type": "str", "default": "neo4j"},
                "connect_timeout": {"type": "float", "default": 10.0},
            },
        }
    }


def milvus_argument_spec(required: bool = True) -> Spec:
    """The ``milvus`` option: connection to the vector store."""
    return {
        "milvus": {
            "type": "dict",
            "required": required,
            "options": {
                "uri": {"type": "str", "default": "http://127.0.0.1:19530"},
                "token": {"type": "str", "default": "", "no_log": True},
                "user": {"type": "str", "default": ""},
                "password": {"type": "str", "default": "", "no_log": True},
                "db_name": {"type": "str", "default": "default"},
                "timeout": {"type": "float", "default": 10.0},
            },
        }
    }


def postgres_argument_spec(required: bool = True) -> Spec:
    """The ``postgres`` option: connection to the AgentDB target."""
    return {
        "postgres": {
            "type": "dict",
            "required": required,
            "options": {
                "host": {"type": "str", "default": "127.0.0.1"},
                "port": {"type": "int", "default": 5432},
                "user": {"type": "str", "default": "migration"},
                "password": {"type": "str", "required": True, "no_log": True},
                "database": {"type": "str", "default": "agentdb"},
                "connect_timeout": {"type": "int", "default": 10},
                "sslmode": {"type": "str", "default": "prefer"},
            },
        }
    }


def redis_argument_spec(required: bool = True) -> Spec:
    """The ``redis`` option: connection to the AgentDB source and its key prefix."""
    return {
        "redis": {
            "type": "dict",
            "required": required,
            "options": {
                "host": {"type": "str", "default": "127.0.0.1"},
                "port": {"type": "int", "default": 6379},
                "username": {"type": "str", "default": ""},
                "password": {"type": "str", "default": "", "no_log": True},
                "db": {"type": "int", "default": 0},
                "key_prefix": {"type": "str", "default": "agentdb:"},
                "connect_timeout": {"type": "float", "default": 10.0},
            },
        }
    }


def source_argument_spec() -> Spec:
    """The ``source`` option: labels and properties of the embeddings in Neo4j."""
    return {
        "source": {
            "type": "dict",
            "default": {},
            "options": {
                "label": {"type": "str", "default": "Media"},
                "id_property": {"type": "str", "default": "id"},
                "embedding_property": {"type": "str", "default": "embedding"},
                "updated_at_property": {"type": "str", "default": "updated_at"},
                "vector_index": {"type": "str", "default": "media_embedding"},
            },
        }
    }


def copy_run_argument_spec() -> Spec:
    """Retries and progress pushes, the same for every copy."""
    return {
        "retry_attempts": {"type": "int", "default": 10},
        "retry_initial_delay": {"type": "float", "default": 0.5},
        "retry_max_delay": {"type": "float", "default": 20.0},
        "pushgateway_url": {"type": "str", "default": ""},
        "metrics_interval": {"type": "float", "default": 5.0},
    }


def merge_specs(*specs: Spec) -> Spec:
    """Combine spec fragments, refusing two fragments that define one option."""
    merged: Spec = {}
    for spec in specs:
        for name, option in spec.items():
            if name in merged:
                raise ValueError(f"option {name!r} defined twice")
            merged[name] = option
    return merged
