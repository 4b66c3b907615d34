"""Times and durations in words for the web UI (pure: the current time is an argument)."""

from __future__ import annotations

from datetime import datetime

_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def duration_words(seconds: float) -> str:
    """``259200`` -> ``3 days``; ``5430`` -> ``1 hour 30 minutes`` (the two largest units, the rest
    dropped); under ten seconds with a tenth, under one with milliseconds."""
    if seconds < 0:
        return "-" + duration_words(-seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f} seconds"
    whole, parts = int(seconds), list[str]()
    for unit, size in _UNITS:
        if whole >= size and len(parts) < 2:
            parts.append(_plural(whole // size, unit))
            whole %= size
        elif parts:  # a gap ends it: "1 day 3 seconds" says more than it helps
            break
    return " ".join(parts)


def relative(then: datetime, now: datetime) -> str:
    """``then`` from ``now``'s point of view: ``3 minutes ago``, ``in 2 hours``, ``just now``."""
    delta = (now - then).total_seconds()
    if abs(delta) < 5:
        return "just now"
    for unit, size in _UNITS:
        if abs(delta) >= size:
            words = _plural(int(abs(delta) // size), unit)
            return f"{words} ago" if delta > 0 else f"in {words}"
    return "just now"
