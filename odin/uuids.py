"""UUID layouts (pure): the version-7 form Temporal gives run ids, from a time and given bits,
so the pure core can make one without a clock or a random source of its own."""

from __future__ import annotations

import uuid


def uuid7(unix_ms: int, entropy: bytes) -> uuid.UUID:
    """A version-7 UUID (RFC 9562): 48 bits of Unix time in milliseconds, then 74 bits taken from
    ``entropy`` (at least 10 bytes), so ids sort by time."""
    rest = int.from_bytes(entropy[:10], "big")
    value = (unix_ms & (1 << 48) - 1) << 80 | 0x7 << 76 | (rest >> 68 & 0xFFF) << 64 | 0b10 << 62 | rest & (1 << 62) - 1
    return uuid.UUID(int=value)
