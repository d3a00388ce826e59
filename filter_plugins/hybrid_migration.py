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


class FilterModule:
    """Registers the filters with Ansible."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "path_ancestors": path_ancestors,
            "server_setting_args": server_setting_args,
        }
