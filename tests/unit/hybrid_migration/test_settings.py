from __future__ import annotations

import pytest
from ansible.module_utils.hybrid_migration.errors import TerminalError
from ansible.module_utils.hybrid_migration.settings import (
    MilvusSettings,
    Neo4jSettings,
    PostgresSettings,
    RedisSettings,
    SourceModel,
    quote_identifier,
)


def test_none_values_fall_back_to_defaults() -> None:
    settings = Neo4jSettings.from_mapping({"uri": None, "password": "pw-123456"})
    assert settings.uri == "bolt://127.0.0.1:7687"
    assert settings.password == "pw-123456"


def test_unknown_keys_are_ignored() -> None:
    assert RedisSettings.from_mapping({"port": 6380, "colour": "blue"}).port == 6380


@pytest.mark.parametrize("uri", ["http://127.0.0.1:7687", "127.0.0.1:7687", ""])
def test_neo4j_uri_must_be_bolt(uri: str) -> None:
    with pytest.raises(TerminalError, match="bolt"):
        Neo4jSettings.from_mapping({"uri": uri})


def test_milvus_uri_scheme_is_checked() -> None:
    with pytest.raises(TerminalError, match=r"milvus\.uri"):
        MilvusSettings.from_mapping({"uri": "bolt://x"})


@pytest.mark.parametrize(
    "settings",
    [
        Neo4jSettings(password="n-secret-1"),
        MilvusSettings(token="m-secret-2", password="m-secret-3"),
        PostgresSettings(password="p-secret-4"),
        RedisSettings(password="r-secret-5"),
    ],
)
def test_repr_never_shows_a_secret(settings: object) -> None:
    assert "secret" not in repr(settings)


@pytest.mark.parametrize("field", ["label", "id_property", "embedding_property", "updated_at_property"])
def test_source_names_refuse_backticks_and_empty(field: str) -> None:
    with pytest.raises(TerminalError, match=field):
        SourceModel.from_mapping({field: "bad`name"})
    with pytest.raises(TerminalError, match=field):
        SourceModel.from_mapping({field: ""})


def test_quote_identifier() -> None:
    assert quote_identifier("Media") == "`Media`"
