"""Task queues on Redis streams (docs/architecture.md#matching-redis).

Keys of a queue (namespace id, name, kind), all under one hash tag, so in one Redis Cluster slot:
``<prefix>{<ns>:<queue>:<kind>}:<p>`` for each of ``partitions`` streams (one consumer group each)
of the default priority level, ``…}:k<level>:<p>`` for the other levels (an entry's stream is its
level's; a stream is numbered by its position, ``(level - 1) * partitions + p``);
``:ids`` (task id -> ``<p>:<entry id>`` of its queued or handed-out entry: ``add`` is idempotent);
``:seq`` (the last entry id given out: ids grow across partitions, so a poll takes the oldest head of
all of them, FIFO by add time); ``:pollers`` (identity -> start or end of its last poll, cluster time);
``:polling`` (consumer -> deadline of each poll waiting now); ``:rates`` (``a<second>`` / ``d<second>``
-> entries added / handed out in that second of Redis's clock, for the last ``RATE_WINDOW`` seconds);
``:limit`` (the dispatch rate limit and its token bucket, expiring ``RATE_TTL`` after the last poll
that set it). Every queue has the same partition count
(sticky ones too: their names tell nothing) and all processes must agree on it. Each step touching
several keys is one Lua script, hence atomic.

Priority. A take looks at the levels highest first and hands out the oldest head of the first level
that has one; an empty stream costs it one O(1) call (XLEN). A poll that blocks
reads all streams; entries arriving together are sorted by level, then id.

Rate limit. A poll with ``max_per_second`` sets ``:rate``. While a rate is in force, a take first
refills the bucket (at most one token, by Redis's clock), and without a token returns how long to
wait: the poll sleeps that long (at least ``MIN_RATE_WAIT``) and takes again. A take that finds no
entry keeps its token while it blocks and gives it back if the poll ends empty.

Consumers. Each poll is its own consumer ``<instance>:<n>``. A script hands it the oldest queued entry,
creating missing groups on the way (at id 0, not ``$``: after a FLUSHALL, entries re-added before a
poll recreated the group must be seen); only if there is none does it block in XREADGROUP on all
partitions. The entry stays pending under that consumer until ``ack`` (XACK + XDEL, drop it from
``:ids``, delete the consumer) or ``requeue``. XGROUP DELCONSUMER silently drops pending entries,
stranding them and their task ids, so every script deleting a consumer first re-queues what it holds.

Cancellation. A poll runs on one pinned connection whose CLIENT ID it knows. Cancelled (or failed)
mid-command, Redis may have handed its consumer an entry the caller never saw: a shielded clean-up
kills the connection (CLIENT KILL ID: nothing more can reach it, even if the clean-up overtakes its
close on the way to Redis), then re-queues what the consumer holds and deletes it. Without permission
for CLIENT KILL, only that narrow race is left to the reclaimer.

Reclaim. Entries handed out and never acknowledged (the poller died, the engine failed) come back: every
``reclaim_idle / 2`` (at most 10 s) a background task takes, for each queue this instance polled in the
last minute, the entries idle longer than ``reclaim_idle`` (XAUTOCLAIM) and re-adds them as fresh
entries (blocked ``>`` readers see only new ids). It also deletes consumers dead processes left behind
(none pending, idle longer than ``reclaim_idle``; deleting one a poll still waits on is harmless, Redis
recreates it to serve that poll). An engine slower than ``reclaim_idle`` gets an entry twice; entries
are hints, so it drops the second as stale. A requeued or reclaimed entry goes to the back of the
queue (``requeue_first = False``).

Connections. The client must use ``decode_responses=False``. Each poll holds one connection of its pool
until it returns: size the pool for the concurrent polls plus the other traffic (redis-py's default
pool allows 100 and raises MaxConnectionsError beyond; a BlockingConnectionPool waits instead). A short
``socket_timeout`` is fine: waits are cut into blocks shorter than it.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import itertools
import json
import logging
import uuid
import zlib
from collections.abc import Coroutine, Iterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from odin import metrics
from odin.clock import Clock, SystemClock, monotonic
from odin.matching import (
    DEFAULT_PRIORITY,
    PRIORITY_LEVELS,
    RATE_TTL,
    RATE_WINDOW,
    PollerInfo,
    QueueStats,
    TaskEntry,
    priority_level,
)
from odin.redisconn import block_limit

log = logging.getLogger(__name__)

GROUP = "odin"
POLLER_TTL = 300  # seconds an identity stays listed after its last poll
WATCH = 60.0  # an instance reclaims the entries of queues it polled this recently
RECENT_POLLER_CACHE = 1.0  # seconds a "the queue has a recent poller" answer is reused
MIN_RATE_WAIT = 0.005  # a poll short of a token sleeps at least this long before it takes again

_FIELDS = {f.name for f in dataclasses.fields(TaskEntry)} - {"receipt"}

# KEYS of every script: the streams (levels x partitions), then :ids, :seq, :pollers, :polling, :rates,
# :limit. Stream entries are {'t', task id, 'e', payload}, so e[2][2] is the task id and e[2][4] the payload.
_PRELUDE = f"""
local G, TTL, WINDOW, LEVELS = '{GROUP}', {POLLER_TTL}, {RATE_WINDOW}, {PRIORITY_LEVELS}
local P = #KEYS - 6
local PARTS = P / LEVELS
local IDS, SEQ, POLLERS, POLLING, RATES, LIMIT = KEYS[P + 1], KEYS[P + 2], KEYS[P + 3], KEYS[P + 4], KEYS[P + 5], KEYS[P + 6]

local function fields(flat)
  local t = {{}}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- The group's XINFO fields; nil if the stream or the group is missing.
local function group(key)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', key)
  if ok then
    for _, g in ipairs(groups) do
      local f = fields(g)
      if f['name'] == G then return f end
    end
  end
  return nil
end

local function ensure(key)
  local g = group(key)
  if g then return g['last-delivered-id'] end
  redis.call('XGROUP', 'CREATE', key, G, '0', 'MKSTREAM')
  return '0-0'
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function push(p, task, payload)
  local key = KEYS[p + 1]
  if redis.call('EXISTS', key) == 0 then redis.call('XGROUP', 'CREATE', key, G, '0', 'MKSTREAM') end
  local t = redis.call('TIME')
  local ms, seq = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), 0
  local last = redis.call('GET', SEQ)
  if last then
    local lms, lseq = parse(last)
    if lms >= ms then ms, seq = lms, lseq + 1 end
  end
  local ok, id = pcall(redis.call, 'XADD', key, string.format('%d-%d', ms, seq), 't', task, 'e', payload)
  if not ok then id = redis.call('XADD', key, '*', 't', task, 'e', payload) end -- :seq was lost alone
  redis.call('SET', SEQ, id)
  redis.call('HSET', IDS, task, p .. ':' .. id)
end

-- Take back delivery <p>:<id> of a task; queue the task afresh unless another copy is queued.
local function requeue(p, id, task, payload)
  redis.call('XACK', KEYS[p + 1], G, id)
  redis.call('XDEL', KEYS[p + 1], id)
  local loc = redis.call('HGET', IDS, task)
  if not loc or loc == p .. ':' .. id then push(p, task, payload) end
end

local function give_back(p, id)
  local e = redis.call('XRANGE', KEYS[p + 1], id, id)[1]
  if e then requeue(p, id, e[2][2], e[2][4]) else redis.call('XACK', KEYS[p + 1], G, id) end
end

-- Re-queue what a consumer holds, then delete it: in stream ``only`` (a poll that never blocked
-- read no other), else in all.
local function release(c, only)
  local first, last = 0, P - 1
  if only then first, last = only, only end
  for p = first, last do
    local ok, held = pcall(redis.call, 'XPENDING', KEYS[p + 1], G, '-', '+', 1000, c)
    if ok then
      for _, e in ipairs(held) do give_back(p, e[1]) end
      redis.call('XGROUP', 'DELCONSUMER', KEYS[p + 1], G, c)
    end
  end
end

-- One more entry added ('a') or handed out ('d') in this second.
local function count(kind)
  redis.call('HINCRBY', RATES, kind .. redis.call('TIME')[1], 1)
  redis.call('EXPIRE', RATES, 2 * WINDOW)
end

local function seen(identity, now)
  redis.call('HSET', POLLERS, identity, now)
  redis.call('EXPIRE', POLLERS, TTL)
end
"""

# ARGV: task id, payload, partition.
_ADD = """
local loc = redis.call('HGET', IDS, ARGV[1])
if loc then
  local p, id = string.match(loc, '^(%d+):(.+)$')
  p = tonumber(p)
  -- The index outlives its entry only if keys were lost piecemeal: then the add goes ahead.
  if p == nil or p >= P or redis.call('XRANGE', KEYS[p + 1], id, id)[1] then return 0 end
end
push(tonumber(ARGV[3]), ARGV[1], ARGV[2])
count('a')
return 1
"""

# ARGV: consumer, identity, now, deadline, rate (0: keep the queue's), whether the poll holds a token
# already ('1': it blocked before). Hands the consumer the oldest
# head of the highest level that has one; or registers the poll as waiting and returns nil; or, short
# of a token, returns {-1, seconds to wait}.
_TAKE = f"""
seen(ARGV[2], ARGV[3])
local rate = tonumber(ARGV[5])
if rate > 0 then
  redis.call('HSET', LIMIT, 'rate', rate)
  redis.call('EXPIRE', LIMIT, {int(RATE_TTL)})
else
  rate = tonumber(redis.call('HGET', LIMIT, 'rate')) or 0
end
if rate > 0 and ARGV[6] ~= '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
  local b = redis.call('HMGET', LIMIT, 'tokens', 'stamp')
  local tokens = math.min(1, (tonumber(b[1]) or 1) + math.max(now - (tonumber(b[2]) or now), 0) * rate)
  if tokens < 1 then
    redis.call('HSET', LIMIT, 'tokens', tostring(tokens), 'stamp', tostring(now))
    return {{-1, tostring((1 - tokens) / rate)}}
  end
  redis.call('HSET', LIMIT, 'tokens', tostring(tokens - 1), 'stamp', tostring(now))
end
local best, bms, bseq
for p = 0, P - 1 do
  if best and p % PARTS == 0 then break end -- a higher level has an entry
  local key = KEYS[p + 1]
  if redis.call('XLEN', key) > 0 then
    local head = redis.call('XRANGE', key, '(' .. ensure(key), '+', 'COUNT', 1)[1]
    if head then
      local ms, seq = parse(head[1])
      if not best or ms < bms or (ms == bms and seq < bseq) then best, bms, bseq = p, ms, seq end
    end
  end
end
if not best then
  -- The poll blocks on every stream next: each needs its group.
  for p = 0, P - 1 do
    if redis.call('EXISTS', KEYS[p + 1]) == 0 then redis.call('XGROUP', 'CREATE', KEYS[p + 1], G, '0', 'MKSTREAM') end
  end
  redis.call('ZADD', POLLING, ARGV[4], ARGV[1])
  redis.call('EXPIRE', POLLING, TTL + math.ceil(ARGV[4] - ARGV[3]))
  return false
end
redis.call('ZREM', POLLING, ARGV[1])
local e = redis.call('XREADGROUP', 'GROUP', G, ARGV[1], 'COUNT', 1, 'STREAMS', KEYS[best + 1], '>')[1][2][1]
count('d')
return {{best, e[1], e[2][4]}}
"""

# ARGV: consumer, identity, now, release all ('1') or not ('0': the poll got an entry by blocking), give
# the poll's rate token back ('1') or not ('0'), then <stream, id> pairs to give back.
_FINISH = """
if ARGV[4] == '1' then release(ARGV[1]) else count('d') end
if ARGV[5] == '1' and redis.call('EXISTS', LIMIT) == 1 then
  redis.call('HSET', LIMIT, 'tokens', math.min(1, (tonumber(redis.call('HGET', LIMIT, 'tokens')) or 0) + 1))
end
for i = 6, #ARGV, 2 do give_back(tonumber(ARGV[i]), ARGV[i + 1]) end
redis.call('ZREM', POLLING, ARGV[1])
seen(ARGV[2], ARGV[3])
"""

# ARGV: consumer, task id, stream, entry id, the stream the consumer read alone ('*': it blocked, so
# all)[, payload]. Acknowledges the delivery, or with a payload gives it back; then the consumer goes.
_SETTLE = """
local p, id = tonumber(ARGV[3]), ARGV[4]
if ARGV[6] then
  requeue(p, id, ARGV[2], ARGV[6])
else
  redis.call('XACK', KEYS[p + 1], G, id)
  redis.call('XDEL', KEYS[p + 1], id)
  if redis.call('HGET', IDS, ARGV[2]) == p .. ':' .. id then redis.call('HDEL', IDS, ARGV[2]) end
end
release(ARGV[1], tonumber(ARGV[5]))
"""

# ARGV: min idle ms, now.
_RECLAIM = """
for p = 0, P - 1 do
  local key = KEYS[p + 1]
  if group(key) then
    for _, e in ipairs(redis.call('XAUTOCLAIM', key, G, 'odin-reclaim', ARGV[1], '0-0', 'COUNT', 100)[2]) do
      if e[2] then requeue(p, e[1], e[2][2], e[2][4]) end
    end
    for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', key, G)) do
      local f = fields(c)
      if f['pending'] == 0 and (f['idle'] >= tonumber(ARGV[1]) or f['name'] == 'odin-reclaim') then
        redis.call('XGROUP', 'DELCONSUMER', key, G, f['name'])
      end
    end
  end
end
redis.call('ZREMRANGEBYSCORE', POLLING, '-inf', '(' .. ARGV[2])
local pollers = redis.call('HGETALL', POLLERS)
for i = 1, #pollers, 2 do
  if tonumber(pollers[i + 1]) < ARGV[2] - TTL then redis.call('HDEL', POLLERS, pollers[i]) end
end
"""

# KEYS: the key's holders (a sorted set: holder -> when its lease ends, by Redis's clock).
# ARGV: limit, holder, lease seconds. 1 if the holder has a slot now.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
local ends = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], ends, ARGV[2])
local last = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
redis.call('EXPIREAT', KEYS[1], math.ceil(math.max(last, ends)) + 1)
return 1
"""

# The backlog (queued and not handed out: with acked entries deleted, XLEN minus pending), the add
# time (ms) of its oldest entry or -1, Redis's time (ms), and the adds and dispatches of the window.
_STATS = """
local n, oldest = 0, nil
for p = 0, P - 1 do
  local g = group(KEYS[p + 1])
  if g then
    n = n + redis.call('XLEN', KEYS[p + 1]) - g['pending']
    local head = redis.call('XRANGE', KEYS[p + 1], '(' .. g['last-delivered-id'], '+', 'COUNT', 1)[1]
    if head then
      local ms = parse(head[1])
      if not oldest or ms < oldest then oldest = ms end
    end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1])
local adds, dispatches = 0, 0
local counts = redis.call('HGETALL', RATES)
for i = 1, #counts, 2 do
  local kind, second = string.sub(counts[i], 1, 1), tonumber(string.sub(counts[i], 2))
  if second <= now - WINDOW then
    redis.call('HDEL', RATES, counts[i])
  elseif kind == 'a' then
    adds = adds + tonumber(counts[i + 1])
  else
    dispatches = dispatches + tonumber(counts[i + 1])
  end
end
return {n, oldest or -1, now * 1000 + math.floor(tonumber(t[2]) / 1000), adds, dispatches}
"""

# Returns <stream, entry id, payload> triples of every entry not handed out, deleted.
_DRAIN = """
local out, held = {}, 0
for p = 0, P - 1 do
  local key = KEYS[p + 1]
  local g = group(key)
  if g then held = held + g['pending'] end
  for _, e in ipairs(redis.call('XRANGE', key, g and '(' .. g['last-delivered-id'] or '-', '+')) do
    redis.call('XDEL', key, e[1])
    if redis.call('HGET', IDS, e[2][2]) == p .. ':' .. e[1] then redis.call('HDEL', IDS, e[2][2]) end
    table.insert(out, p)
    table.insert(out, e[1])
    table.insert(out, e[2][4])
  end
end
-- Its pollers go too (as in memory); with nothing handed out either, a dead sticky queue leaves no keys.
if held == 0 then redis.call('DEL', unpack(KEYS)) else redis.call('DEL', POLLERS, POLLING) end
return out
"""


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_order(entry_id: bytes | str) -> tuple[int, int]:
    ms, seq = _s(entry_id).split("-")
    return int(ms), int(seq)


def _payload(entry: TaskEntry) -> str:
    return json.dumps({name: getattr(entry, name) for name in sorted(_FIELDS)})


def _entry(payload: bytes | str, receipt: str = "") -> TaskEntry:
    data = json.loads(payload)
    return TaskEntry(**{k: v for k, v in data.items() if k in _FIELDS}, receipt=receipt)


class RedisTaskQueues:
    requeue_first = False

    def __init__(
        self, redis: Redis, prefix: str = "odin:", partitions: int = 1, reclaim_idle: float = 30.0, clock: Clock | None = None
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self._redis = redis
        self._prefix = prefix
        self.partitions = partitions
        self._streams = partitions * PRIORITY_LEVELS
        self._reclaim_idle = reclaim_idle
        self._name = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)
        script = lambda body: redis.register_script(_PRELUDE + body)  # noqa: E731
        self._add, self._take, self._finish = script(_ADD), script(_TAKE), script(_FINISH)
        self._settle, self._reclaim = script(_SETTLE), script(_RECLAIM)
        self._stats, self._drain = script(_STATS), script(_DRAIN)
        self._acquire = redis.register_script(_ACQUIRE)
        self._max_block = block_limit(redis)
        self._watched: dict[tuple[str, ...], float] = {}
        # (queue keys, window) -> cluster time until which has_recent_poller may answer yes unasked.
        self._recent: dict[tuple[tuple[str, ...], float], float] = {}
        self._reclaimer: asyncio.Task | None = None
        # Poll times and deadlines are compared across processes: with the cluster's clock, a
        # process whose wall clock is off neither hides the others' polls nor keeps its own alive.
        self._clock = clock or SystemClock()
        self._tasks: set[asyncio.Task] = set()

    def _keys(self, namespace_id: str, queue: str, kind: str) -> tuple[str, ...]:
        base = f"{self._prefix}{{{namespace_id}:{queue}:{kind}}}:"
        streams = (
            f"{base}{p}" if level == DEFAULT_PRIORITY else f"{base}k{level}:{p}"
            for level in range(1, PRIORITY_LEVELS + 1)
            for p in range(self.partitions)
        )
        extra = ("ids", "seq", "pollers", "polling", "rates", "limit")
        return (*streams, *(base + name for name in extra))

    def _receipt(self, entry: TaskEntry) -> tuple[int, str, str, str]:
        """``<stream>:<entry id>:<scope>:<consumer>``; scope is the one stream the consumer read,
        or ``*`` if it blocked on all of them."""
        p, entry_id, scope, consumer = entry.receipt.split(":", 3)
        if not 0 <= int(p) < self._streams:
            raise ValueError(f"receipt {entry.receipt!r} names a stream this queue does not have")
        return int(p), entry_id, scope, consumer

    async def add(self, namespace_id: str, queue: str, task_type: str, entry: TaskEntry) -> None:
        level = priority_level(entry.priority)
        p = (level - 1) * self.partitions + zlib.crc32(entry.task_id.encode()) % self.partitions
        await self._add(keys=self._keys(namespace_id, queue, task_type), args=[entry.task_id, _payload(entry), p])

    async def ack(self, namespace_id: str, queue: str, task_type: str, entry: TaskEntry) -> None:
        if entry.receipt:  # else it came from no poll: nothing to acknowledge
            p, entry_id, scope, consumer = self._receipt(entry)
            args = [consumer, entry.task_id, p, entry_id, scope]
            await self._settle(keys=self._keys(namespace_id, queue, task_type), args=args)

    async def requeue(self, namespace_id: str, queue: str, task_type: str, entry: TaskEntry) -> None:
        if not entry.receipt:
            return await self.add(namespace_id, queue, task_type, entry)
        p, entry_id, scope, consumer = self._receipt(entry)
        args = [consumer, entry.task_id, p, entry_id, scope, _payload(entry)]
        await self._settle(keys=self._keys(namespace_id, queue, task_type), args=args)

    # -- polls -----------------------------------------------------------------------------

    async def poll(
        self,
        namespace_id: str,
        queue: str,
        task_type: str,
        timeout: float,
        identity: str,
        max_per_second: float | None = None,
    ) -> TaskEntry | None:
        keys = self._keys(namespace_id, queue, task_type)
        deadline = monotonic() + timeout
        self._watch(keys, deadline)
        consumer = f"{self._name}:{next(self._counter)}"
        conn = self._redis.client()  # one connection for the whole poll, so a cancelled poll can be cut off
        # The connection's CLIENT ID once the poll blocks on it; "token" while it holds a rate token.
        blocking: dict[str, int] = {}
        try:
            entry = await self._poll(conn, keys, consumer, identity, deadline, blocking, max_per_second or 0)
            # A task that came while the poll blocked is a sync match; one the first take found, backlog.
            metrics.count_poll(task_type, entry, sync=entry is not None and entry.receipt.split(":", 3)[2] == "*")
        except BaseException:
            client_id, token = blocking.get("client_id"), "token" in blocking
            await asyncio.shield(self._spawn(self._abandon(conn, client_id, keys, consumer, identity, token)))
            raise
        if entry is None:
            token = "token" in blocking
            await asyncio.shield(self._spawn(self._abandon(conn, None, keys, consumer, identity, token)))
        else:
            self._spawn(conn.aclose())  # no await between taking an entry and returning it
        return entry

    async def _poll(
        self,
        conn: Redis,
        keys: tuple[str, ...],
        consumer: str,
        identity: str,
        deadline: float,
        blocking: dict,
        rate: float,
    ) -> TaskEntry | None:
        streams = keys[: self._streams]
        while True:
            remaining, now = deadline - monotonic(), self._now()
            args: list[str | float] = [consumer, identity, now, now + max(remaining, 0), rate, int("token" in blocking)]
            got = await self._take(keys=keys, args=args, client=conn)
            if got and int(got[0]) < 0:  # short of a rate token
                wait = max(float(got[1]), MIN_RATE_WAIT)
                if wait >= deadline - monotonic():
                    await asyncio.sleep(max(deadline - monotonic(), 0))
                    return None
                await asyncio.sleep(wait)
                continue
            if got:
                scope = "*" if "client_id" in blocking else got[0]
                return _entry(got[2], f"{got[0]}:{_s(got[1])}:{scope}:{consumer}")
            blocking["token"] = 1  # taken by the take that found nothing (if a rate is in force)
            if remaining <= 0:
                return None
            block = max(1, int(min(remaining, self._max_block) * 1000))
            if "client_id" not in blocking:
                blocking["client_id"] = await self._client_id(conn)
            try:
                reply = await conn.xreadgroup(GROUP, consumer, dict.fromkeys(streams, ">"), count=1, block=block)
            except ResponseError as exc:
                if str(exc).startswith(("NOGROUP", "UNBLOCKED")):
                    continue  # the queue's keys vanished (a flush): the next take recreates them
                raise
            delivered = sorted(
                self._delivered(reply, streams), key=lambda d: (d[0] // self.partitions, _id_order(d[1]))
            )
            if delivered:
                (p, entry_id, payload), *rest = delivered
                # Entries that came to other partitions between take and block arrive together: give
                # those back. In the background, like the rest of the clean-up: nothing may delay the return.
                extra = [x for p2, id2, _ in rest for x in (p2, id2)]
                self._spawn(self._finish(keys=keys, args=[consumer, identity, self._now(), 0, 0, *extra]))
                return _entry(payload, f"{p}:{_s(entry_id)}:*:{consumer}")
            if monotonic() >= deadline:
                return None

    def _now(self) -> float:
        return self._clock.now().timestamp()

    @staticmethod
    async def _client_id(conn: Redis) -> int:
        """The poll connection's CLIENT ID, asked once per socket of a pooled connection (a
        reconnect gets a new id, so the id is kept together with the stream it belongs to)."""
        connection = conn.connection
        known = getattr(connection, "_odin_client_id", None)
        if known is not None and known[0] is getattr(connection, "_writer", None):
            return known[1]
        client_id = await conn.client_id()
        connection._odin_client_id = (getattr(connection, "_writer", None), client_id)
        return client_id

    @staticmethod
    def _delivered(reply: Any, streams: tuple[str, ...]) -> Iterator[tuple[int, bytes, bytes]]:
        partition = {s: p for p, s in enumerate(streams)}
        for name, entries in reply.items() if isinstance(reply, dict) else reply or []:
            for entry_id, fields in entries:
                yield partition[_s(name)], entry_id, {_s(k): v for k, v in fields.items()}["e"]

    async def _abandon(
        self, conn: Redis, client_id: int | None, keys: tuple[str, ...], consumer: str, identity: str, token: bool
    ) -> None:
        """End a poll that returns nothing: give back whatever its consumer got (and its rate token,
        if it holds one), then delete it."""
        try:
            if client_id is not None:
                if conn.connection is not None:
                    await conn.connection.disconnect()
                try:
                    await self._redis.client_kill_filter(_id=str(client_id))
                except ResponseError as exc:  # no permission: the reclaimer covers the race
                    log.debug("CLIENT KILL refused: %s", exc)
            await self._finish(keys=keys, args=[consumer, identity, self._now(), 1, int(token)])
        except (RedisError, OSError) as exc:
            log.warning("could not release task queue consumer %s (the reclaimer will): %s", consumer, exc)
        finally:
            await conn.aclose()

    def _spawn(self, coro: Coroutine) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("task queue clean-up failed: %r", task.exception())

    # -- reclaiming ------------------------------------------------------------------------

    def _watch(self, keys: tuple[str, ...], poll_deadline: float) -> None:
        self._watched[keys] = max(poll_deadline, self._watched.get(keys, 0.0))
        if self._reclaimer is None or self._reclaimer.done():
            # A context of its own: not part of the trace (or log context) of the poll that started it.
            self._reclaimer = asyncio.create_task(self._reclaim_loop(), context=contextvars.Context())

    async def _reclaim_loop(self) -> None:
        interval = min(max(self._reclaim_idle / 2, 0.05), 10.0)
        while self._watched:
            await asyncio.sleep(interval)
            cutoff = monotonic() - max(WATCH, 2 * self._reclaim_idle)
            for keys, polled_until in list(self._watched.items()):
                if polled_until < cutoff:
                    del self._watched[keys]
                    continue
                try:
                    await self._reclaim(keys=keys, args=[int(self._reclaim_idle * 1000), self._now()])
                except RedisError as exc:
                    log.warning("could not reclaim entries of %s: %s", keys[0], exc)
        self._reclaimer = None

    async def close(self) -> None:
        if self._reclaimer is not None:
            self._reclaimer.cancel()
        await asyncio.gather(*filter(None, [self._reclaimer, *self._tasks]), return_exceptions=True)
        self._reclaimer = None

    # -- pollers and inspection ------------------------------------------------------------

    async def has_recent_poller(self, namespace_id: str, queue: str, task_type: str, within: float) -> bool:
        """Whether a poll is waiting on the queue or ended less than ``within`` seconds ago (never
        for a queue ``drain`` declared dead: ``:pollers:closed``, kept ``POLLER_TTL`` seconds). A yes
        stays true until the latest poll seen plus ``within``, so it is remembered for that long,
        but at most ``RECENT_POLLER_CACHE`` seconds (another process may drain the queue meanwhile)."""
        keys = self._keys(namespace_id, queue, task_type)
        now = self._now()
        if self._recent.get((keys, within), 0.0) > now:
            return True
        *_, pollers, polling, _, _ = keys
        async with self._redis.pipeline(transaction=False) as pipe:
            waiting, seen, closed = await pipe.zcount(polling, now, "+inf").hvals(pollers).exists(f"{pollers}:closed").execute()
        latest = now if waiting > 0 else max((float(t) for t in seen), default=0.0)
        if closed or latest < now - within:
            self._recent.pop((keys, within), None)
            return False
        if len(self._recent) > 10_000:
            self._recent.clear()
        self._recent[(keys, within)] = min(latest + within, now + RECENT_POLLER_CACHE)
        return True

    async def pollers(self, namespace_id: str, queue: str, task_type: str) -> list[PollerInfo]:
        *_, pollers, _, _, _ = self._keys(namespace_id, queue, task_type)
        now = self._now()
        seen = await self._redis.hgetall(pollers)
        return [PollerInfo(_s(i), min(float(t), now)) for i, t in seen.items() if float(t) >= now - POLLER_TTL]

    async def backlog(self, namespace_id: str, queue: str, task_type: str) -> int:
        return (await self.stats(namespace_id, queue, task_type)).backlog

    async def stats(self, namespace_id: str, queue: str, task_type: str) -> QueueStats:
        backlog, oldest_ms, now_ms, adds, dispatches = await self._stats(keys=self._keys(namespace_id, queue, task_type))
        age = max(int(now_ms) - int(oldest_ms), 0) / 1000 if int(oldest_ms) >= 0 else 0.0
        return QueueStats(int(backlog), age, int(adds) / RATE_WINDOW, int(dispatches) / RATE_WINDOW)

    async def drain(self, namespace_id: str, queue: str, task_type: str) -> list[TaskEntry]:
        keys = self._keys(namespace_id, queue, task_type)
        # Dead from now on, before the drain: a poll of its worker still ending (its clean-up records
        # the poller) must not make the queue look alive to has_recent_poller.
        await self._redis.set(f"{keys[-4]}:closed", 1, ex=POLLER_TTL)
        for cached in [k for k in self._recent if k[0] == keys]:
            del self._recent[cached]
        flat = await self._drain(keys=keys)
        triples = zip(flat[::3], flat[1::3], flat[2::3])
        ordered = sorted(triples, key=lambda t: (int(t[0]) // self.partitions, _id_order(t[1])))
        return [_entry(payload) for _, _, payload in ordered]

    # -- concurrency slots -----------------------------------------------------------------

    def _slots_key(self, namespace_id: str, key: str) -> str:
        return f"{self._prefix}slots:{{{namespace_id}}}:{key}"

    async def acquire_slot(self, namespace_id: str, key: str, limit: int, holder: str, lease: float) -> bool:
        keys = [self._slots_key(namespace_id, key)]
        return bool(await self._acquire(keys=keys, args=[limit, holder, max(lease, 0.001)]))

    async def release_slot(self, namespace_id: str, key: str, holder: str) -> None:
        await self._redis.zrem(self._slots_key(namespace_id, key), holder)
