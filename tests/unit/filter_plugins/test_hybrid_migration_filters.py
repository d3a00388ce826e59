from __future__ import annotations

import importlib.util

from conftest import ROOT

spec = importlib.util.spec_from_file_location("project_filters", ROOT / "filter_plugins" / "hybrid_migration.py")
filters = importlib.util.module_from_spec(spec)
spec.loader.exec_module(filters)


def test_path_ancestors_from_root_down() -> None:
    assert filters.path_ancestors("/work/main/.sandbox") == ["/", "/work", "/work/main"]


def test_server_setting_args() -> None:
    assert filters.server_setting_args({"shared_buffers": "256MB", "max_connections": 100}) == [
        "-c",
        "shared_buffers=256MB",
        "-c",
        "max_connections=100",
    ]


def test_filters_are_registered() -> None:
    assert set(filters.FilterModule().filters()) == {"finding_lines", "path_ancestors", "server_setting_args"}


def test_finding_lines_show_counts_examples_and_what_a_sample_cannot_check() -> None:
    lines = filters.finding_lines(
        {
            "missing_in_milvus": {"count": 2, "samples": ["a", "b"]},
            "orphan_in_milvus": {"count": 0, "samples": [], "checked": False},
        }
    )
    assert lines == ["missing in milvus: 2: a, b", "orphan in milvus: 0 (not checked in a sample)"]
