"""Jinja filters of the runbook: small, pure helpers the roles need."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any


def path_ancestors(path: str) -> list[str]:
    """Every directory above ``path``, from the root down, excluding ``path`` itself.

    Used to grant a service account the right to traverse to its data directory.
    """
    parents = list(PurePosixPath(path).parents)
    return [str(parent) for parent in reversed(parents)]


def server_setting_args(settings: dict[str, Any], flag: str = "-c") -> list[str]:
    """Turn ``{name: value}`` into ``['-c', 'name=value', ...]`` for a server command line."""
    arguments: list[str] = []
    for name, value in settings.items():
        arguments.extend([flag, f"{name}={value}"])
    return arguments


def finding_lines(categories: dict[str, dict[str, Any]]) -> list[str]:
    """One readable line per validation category: its count and example ids."""
    lines = []
    for name, category in categories.items():
        samples = category.get("samples") or []
        checked = "" if category.get("checked", True) else " (not checked in a sample)"
        examples = f": {', '.join(samples)}" if samples else ""
        lines.append(f"{name.replace('_', ' ')}: {category.get('count', 0)}{checked}{examples}")
    return lines


class FilterModule:
    """Registers the filters with Ansible."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "finding_lines": finding_lines,
            "path_ancestors": path_ancestors,
            "server_setting_args": server_setting_args,
        }
