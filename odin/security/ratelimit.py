"""Per-namespace request budgets: token buckets, in memory for one process or in Redis for many.

A bucket holds up to ``burst`` tokens and refills at ``rate`` per second; each call takes one.
When it is empty the call is refused before anything is done, with the time until the next token
as the retry hint.
"""

from __future__ import annotations

import time
from typing import Protocol


class RateLimiter(Protocol):
    async def take(self, key: str, rate: float, burst: float) -> float:
        """Take a token: 0.0 when admitted, else the seconds until one will be there."""


class InMemoryRateLimiter:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    async def take(self, key: str, rate: float, burst: float) -> float:
        now = self._clock()
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate


# KEYS[1]: the bucket; ARGV: rate, burst. Returns 0 if admitted, else milliseconds to wait.
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(now - at, 0) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""


class RedisRateLimiter:
    """One bucket per key shared by every process, kept with Redis' clock."""

    def __init__(self, redis, prefix: str = "odin:"):
        self._prefix = f"{prefix}ratelimit:"
        self._take = redis.register_script(_TAKE)

    async def take(self, key: str, rate: float, burst: float) -> float:
        wait_ms = await self._take(keys=[self._prefix + key], args=[rate, burst])
        return int(wait_ms) / 1000.0
