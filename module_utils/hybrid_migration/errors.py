"""Error types that tell callers whether trying again can help."""

from __future__ import annotations


class MigrationError(Exception):
    """Base of every error the engine raises on purpose."""


class TransientError(MigrationError):
    """A failure that may pass on its own (server restarting, timeout): retry it."""


class TerminalError(MigrationError):
    """A failure that retrying cannot fix (bad credentials, bad configuration)."""
