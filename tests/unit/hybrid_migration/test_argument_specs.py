from __future__ import annotations

from typing import Any

import pytest
from ansible.module_utils.hybrid_migration import argument_specs
from ansible.module_utils.hybrid_migration.settings import (
    MilvusSettings,
    Neo4jSettings,
    PostgresSettings,
    RedisSettings,
    SourceModel,
)

BUILDERS = {
    "neo4j": (argument_specs.neo4j_argument_spec, Neo4jSettings),
    "milvus": (argument_specs.milvus_argument_spec, MilvusSettings),
    "postgres": (argument_specs.postgres_argument_spec, PostgresSettings),
    "redis": (argument_specs.redis_argument_spec, RedisSettings),
    "source": (argument_specs.source_argument_spec, SourceModel),
}


def _options(name: str) -> dict[str, Any]:
    builder, _ = BUILDERS[name]
    return builder()[name]["options"]


@pytest.mark.parametrize("name", ["neo4j", "milvus", "postgres", "redis"])
def test_every_secret_is_no_log(name: str) -> None:
    for option, spec in _options(name).items():
        if option in {"password", "token"}:
            assert spec.get("no_log") is True, f"{name}.{option} must be no_log"


@pytest.mark.parametrize("name", list(BUILDERS))
def test_spec_options_match_settings_fields(name: str) -> None:
    _, settings = BUILDERS[name]
    assert set(_options(name)) == set(settings.__dataclass_fields__)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_spec_defaults_match_settings_defaults(name: str) -> None:
    _, settings = BUILDERS[name]
    defaults = settings()
    for option, spec in _options(name).items():
        if "default" in spec:
            assert getattr(defaults, option) == spec["default"], f"{name}.{option}"


def test_required_flag_can_be_relaxed() -> None:
    assert argument_specs.neo4j_argument_spec(required=False)["neo4j"]["required"] is False


def test_merge_refuses_duplicate_options() -> None:
    with pytest.raises(ValueError, match="neo4j"):
        argument_specs.merge_specs(argument_specs.neo4j_argument_spec(), argument_specs.neo4j_argument_spec())
