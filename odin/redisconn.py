"""Redis clients for Odin's adapters, and the one fact blocking commands must respect.

redis-py gives every connection a read timeout (5 s by default), so a command that blocks on the
server (XREADGROUP BLOCK, BLPOP) for longer than that fails with a timeout. Blocking waits are
therefore cut into pieces shorter than ``block_limit(client)``.
"""

from __future__ import annotations

import inspect
import math
import time
from typing import Any

from odin import metrics
from odin.config import Settings, redis_tls_options

# Each blocking wait may last this long; the read timeout must exceed it.
SOCKET_TIMEOUT = 10.0


def connect(settings: Settings):
    client = _observed_client_class().from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        socket_timeout=SOCKET_TIMEOUT,
        socket_keepalive=True,
        health_check_interval=30,
        **redis_tls_options(settings.redis_url),
    )
    metrics.watch_pool("redis", client.connection_pool)
    return client


_observed: type | None = None


def _observed_client_class() -> type:
    """redis-py's asyncio client, counting each command (and pipeline) in the ``redis_*`` metrics."""
    global _observed
    if _observed is not None:
        return _observed
    import redis.asyncio as aioredis
    from redis.asyncio.client import Pipeline

    async def observed(command: str, call: Any) -> Any:
        requests, errors, latency = metrics.redis_call(command)
        requests.inc()
        started = time.perf_counter()
        try:
            return await call
        except Exception:
            errors.inc()
            raise
        finally:
            latency.observe(time.perf_counter() - started)

    class ObservedPipeline(Pipeline):
        async def execute(self, raise_on_error: bool = True) -> Any:
            return await observed("PIPELINE", super().execute(raise_on_error))

    class ObservedRedis(aioredis.Redis):
        async def execute_command(self, *args: Any, **options: Any) -> Any:
            return await observed(args[0], super().execute_command(*args, **options))

        def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
            return ObservedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)

    _observed = ObservedRedis
    return _observed


def socket_timeout(client) -> float | None:
    """The read timeout of the client's connections (redis-py's default where none was given)."""
    pool = client.connection_pool
    if "socket_timeout" in pool.connection_kwargs:
        return pool.connection_kwargs["socket_timeout"]
    for cls in pool.connection_class.__mro__:
        param = inspect.signature(cls.__init__).parameters.get("socket_timeout")
        if param is not None:
            return param.default
    return None


def block_limit(client) -> float:
    """Longest a single blocking command may wait on the server (seconds)."""
    timeout = socket_timeout(client)
    # Redis notices a BLOCK's end only every 1000/hz ms (100 ms by default): keep a margin.
    return max(timeout - 0.5, timeout / 2) if timeout else math.inf
