"""History shards and who runs their background work (docs/architecture.md#shards).

A run lives in shard ``stable_hash(namespace_id, workflow_id) % num_shards``. Any process may update
any run (the compare-and-swap on ``db_version`` keeps that safe); a shard *lease* only decides who
sweeps a shard's timer and transfer queues. Taking a lease bumps the shard's ``range_id`` in SQL,
and sweep writes carry the ``range_id`` they were taken under, so a process that lost its lease
without noticing (a long pause, a partition) has its writes refused instead of racing the new owner.

``StaticShards`` is the single-process case (``odin dev``): one owner for every shard.
``RedisShardLeases`` spreads leases over the live processes: each registers in a members set,
takes free leases (``SET key owner NX PX ttl``) up to its fair share, renews them with an
owner-checking script, gives surplus back when others join, and releases all on a clean stop.
A dead holder's leases expire and are taken over by the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import uuid
import zlib
from datetime import timedelta
from typing import Protocol

from odin import metrics
from odin.aio import cancel_and_wait
from odin.clock import Clock, SystemClock
from odin.persistence.store import ExecutionStore

log = logging.getLogger(__name__)


def shard_for(namespace_id: str, workflow_id: str, num_shards: int) -> int:
    return zlib.crc32(f"{namespace_id}\x00{workflow_id}".encode()) % num_shards


class ShardOwnership(Protocol):
    def owned(self) -> dict[int, int]:
        """Shards this process may sweep now, each with the ``range_id`` its writes are fenced by."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StaticShards:
    """Every shard, owned by this one process (bumping each ``range_id`` once at start)."""

    def __init__(self, store: ExecutionStore, num_shards: int, owner: str):
        self._store = store
        self._num_shards = num_shards
        self._owner = owner
        self._owned: dict[int, int] = {}

    def owned(self) -> dict[int, int]:
        return dict(self._owned)

    async def start(self) -> None:
        with metrics.timed(metrics.shard_lease_latency.get("acquire")):
            self._owned = await self._store.acquire_shards(list(range(self._num_shards)), self._owner, None)
        metrics.shard_lease_changes.get("acquired").inc(len(self._owned))
        metrics.record_shards(self._owner, set(self._owned), set())

    async def stop(self) -> None:
        metrics.record_shards(self._owner, set(), set(self._owned))
        self._owned = {}


# KEYS: lease keys; ARGV: owner, ttl ms. Returns the 1-based indexes of the keys still held.
_RENEW = """
local held = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    held[#held + 1] = i
  end
end
return held
"""

# KEYS: candidate lease keys in order of preference; ARGV: owner, ttl ms, how many to take.
_ACQUIRE = """
local taken = {}
local want = tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  if #taken >= want then break end
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
    taken[#taken + 1] = i
  end
end
return taken
"""

# KEYS: members sorted set; ARGV: owner, ttl ms. Marks the owner alive and returns the members
# seen within the ttl. Scores are Redis's own clock: a member whose wall clock jumps (NTP steps it,
# or it is simply wrong) neither looks dead to the others nor makes them look dead to it.
_MEMBERS = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# KEYS: lease keys; ARGV: owner. Deletes the keys this owner holds.
_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""


class RedisShardLeases:
    def __init__(
        self,
        redis,
        store: ExecutionStore,
        num_shards: int,
        *,
        prefix: str = "odin:",
        owner: str | None = None,
        ttl: float = 10.0,
        clock: Clock | None = None,
    ):
        self._redis = redis
        self._store = store
        self._num_shards = num_shards
        self.owner = owner or f"{uuid.uuid4().hex[:12]}"
        self._ttl = ttl
        self._clock = clock or SystemClock()
        # One hash tag for every lease key, so the scripts' keys share a Redis Cluster slot.
        self._key = f"{prefix}{{shards}}:lease:"
        self._members = f"{prefix}{{shards}}:members"
        self._renew = redis.register_script(_RENEW)
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)
        self._members_script = redis.register_script(_MEMBERS)
        self._held: dict[int, int] = {}
        self._reported: set[int] = set()  # shards last reported to the ownership gauge
        # Leases are trusted only until this monotonic time (last confirmation + ttl - margin).
        self._valid_until = 0.0
        self._task: asyncio.Task | None = None
        # Shards in this owner's order of preference (rendezvous hashing spreads them evenly).
        self._preference = sorted(
            range(num_shards), key=lambda s: hashlib.blake2b(f"{self.owner}:{s}".encode(), digest_size=8).digest()
        )

    def owned(self) -> dict[int, int]:
        if time.monotonic() >= self._valid_until:
            return {}
        return dict(self._held)

    def _lease_key(self, shard_id: int) -> str:
        return f"{self._key}{shard_id}"

    async def start(self) -> None:
        await self.rebalance()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="odin-shard-leases")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        held, self._held, self._valid_until = list(self._held), {}, 0.0
        metrics.record_shards(self.owner, set(), self._reported)
        self._reported = set()
        try:
            if held:
                await self._release(keys=[self._lease_key(s) for s in held], args=[self.owner])
                await self._store.release_shards(held, self.owner)
            await self._redis.zrem(self._members, self.owner)
        except Exception:  # leases expire on their own
            log.warning("could not release shard leases cleanly", exc_info=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self.rebalance()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("shard lease renewal failed")

    async def live_members(self) -> list[str]:
        members = await self._members_script(keys=[self._members], args=[self.owner, int(self._ttl * 1000)])
        return [m.decode() if isinstance(m, bytes) else m for m in members]

    async def rebalance(self) -> None:
        """Renew held leases, give back surplus, take free shards up to this owner's fair share."""
        started = time.monotonic()
        ttl_ms = int(self._ttl * 1000)
        members = await self.live_members()
        target = math.ceil(self._num_shards / max(len(members), 1))

        held = list(self._held)
        if held:
            with metrics.timed(metrics.shard_lease_latency.get("renew")):
                kept = await self._renew(keys=[self._lease_key(s) for s in held], args=[self.owner, ttl_ms])
            kept_shards = {held[i - 1] for i in kept}
            for lost in set(held) - kept_shards:
                log.warning("lost the lease on shard %d", lost)
                metrics.shard_lease_changes.get("lost").inc()
                self._held.pop(lost, None)

        if len(self._held) > target:
            surplus = [s for s in reversed(self._preference) if s in self._held][: len(self._held) - target]
            with metrics.timed(metrics.shard_lease_latency.get("release")):
                await self._release(keys=[self._lease_key(s) for s in surplus], args=[self.owner])
                await self._store.release_shards(surplus, self.owner)
            metrics.shard_lease_changes.get("released").inc(len(surplus))
            for s in surplus:
                self._held.pop(s)
        elif len(self._held) < target:
            candidates = [s for s in self._preference if s not in self._held]
            acquiring = time.perf_counter()
            taken_idx = await self._acquire(
                keys=[self._lease_key(s) for s in candidates], args=[self.owner, ttl_ms, target - len(self._held)]
            )
            taken = [candidates[i - 1] for i in taken_idx]
            if taken:
                expires = self._clock.now() + timedelta(seconds=self._ttl)
                try:
                    self._held.update(await self._store.acquire_shards(taken, self.owner, expires))
                except Exception:
                    await self._release(keys=[self._lease_key(s) for s in taken], args=[self.owner])
                    raise
                metrics.shard_lease_latency.get("acquire").observe(time.perf_counter() - acquiring)
                metrics.shard_lease_changes.get("acquired").inc(len(taken))
        # Stop trusting the leases a little before they could expire.
        self._valid_until = started + self._ttl * 0.9
        metrics.record_shards(self.owner, set(self._held), self._reported)
        self._reported = set(self._held)
