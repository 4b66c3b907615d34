"""Redis clients for Odin's adapters, and the one fact blocking commands must respect.

redis-py gives every connection a read timeout (5 s by default), so a command that blocks on the
server (XREADGROUP BLOCK, BLPOP) for longer than that fails with a timeout. Blocking waits are
therefore cut into pieces shorter than ``block_limit(client)``.
"""

from __future__ import annotations

import inspect
import math

from odin.config import Settings, redis_tls_options

# Each blocking wait may last this long; the read timeout must exceed it.
SOCKET_TIMEOUT = 10.0


def connect(settings: Settings):
    import redis.asyncio as aioredis

    return aioredis.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        socket_timeout=SOCKET_TIMEOUT,
        socket_keepalive=True,
        health_check_interval=30,
        **redis_tls_options(settings.redis_url),
    )


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
