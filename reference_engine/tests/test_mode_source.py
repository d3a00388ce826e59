"""The config-file mode source."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from reference_engine.engine import Engine
from reference_engine.mode_source import ConfigFileMode, config_digest

from .fakes import make_engine, sample


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = make_engine()[0]
    yield engine
    engine.close()


def test_config_digest_is_a_short_sha256() -> None:
    text = "storage_mode: shadow\n"
    assert config_digest(text) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert config_digest(text) != config_digest("storage_mode: hybrid\n")


def test_reads_storage_mode_from_yaml(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "engine.yml"
    text = "# written by the runbook\nstorage_mode: dual_write\nmode_generation: 4\n"
    path.write_text(text, encoding="utf-8")
    source = ConfigFileMode(engine, path)
    source.reload()
    assert (engine.mode, engine.generation, engine.mode_source) == ("dual_write", 4, "config_file")
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    assert engine.config_digest == source.digest == config_digest(text) == expected
    assert engine.describe()["config_digest"] == expected
    assert sample(engine, "engine_storage_mode", {"mode": "dual_write"}) == 1


def test_generation_counts_up_without_one_in_the_file(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "engine.yaml"
    path.write_text("storage_mode: shadow\n", encoding="utf-8")
    source = ConfigFileMode(engine, path)
    source.reload()
    assert (engine.mode, engine.generation) == ("shadow", 1)
    path.write_text("storage_mode: hybrid\n", encoding="utf-8")
    source.reload()
    assert (engine.mode, engine.generation) == ("hybrid", 2)


def test_reads_json_files(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "engine.json"
    path.write_text('{"storage_mode": "hybrid", "mode_generation": 9}', encoding="utf-8")
    ConfigFileMode(engine, path).reload()
    assert (engine.mode, engine.generation) == ("hybrid", 9)


@pytest.mark.parametrize(
    "broken",
    [
        "storage_mode: [unclosed\n",
        "storage_mode: milvus_only\n",
        "mode: shadow\n",
        "just a string\n",
        "storage_mode: shadow\nmode_generation: many\n",
    ],
)
def test_broken_file_keeps_the_previous_mode(engine: Engine, tmp_path: Path, broken: str) -> None:
    path = tmp_path / "engine.yml"
    good = "storage_mode: dual_write\nmode_generation: 3\n"
    path.write_text(good, encoding="utf-8")
    source = ConfigFileMode(engine, path)
    source.reload()
    path.write_text(broken, encoding="utf-8")
    source.reload()
    assert (engine.mode, engine.generation) == ("dual_write", 3)
    assert engine.config_digest == source.digest == config_digest(good)
    assert source.generation == 3


def test_missing_file_keeps_the_previous_mode(engine: Engine, tmp_path: Path) -> None:
    ConfigFileMode(engine, tmp_path / "absent.yml").reload()
    assert (engine.mode, engine.generation, engine.config_digest) == ("neo4j_only", 0, "")
