"""Human-readable numbers for summaries and reports."""

from __future__ import annotations


def human_bytes(size: float) -> str:
    """Render a byte count as ``512 B``, ``1.5 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_duration(seconds: float) -> str:
    """Render seconds as ``6.0s``, ``4m 05s`` or ``1h 02m 03s``."""
    total = float(seconds)
    if total < 60:
        return f"{total:.1f}s"
    minutes, secs = divmod(round(total), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"
