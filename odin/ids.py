"""Random ids: UUID version 7 for runs (as Temporal issues them), version 4 for outbox tasks,
requests and the rest.

``uuid.uuid4()`` makes one ``getrandom`` system call per id, and CPython releases the GIL around
it: on the event loop thread each id is a chance for a database thread to take the GIL and keep it
for up to a switch interval. Here the same kernel randomness is read 256 ids at a time, per thread.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from odin.uuids import uuid7

_BATCH = 256
_local = threading.local()


def _random_bytes() -> bytes:
    """16 bytes of the operating system's randomness, from this thread's batch."""
    pool = getattr(_local, "pool", None)
    if not pool:
        raw = os.urandom(16 * _BATCH)
        pool = _local.pool = [raw[i : i + 16] for i in range(0, len(raw), 16)]
    return pool.pop()


def new_uuid() -> uuid.UUID:
    """A random (version 4) UUID from the operating system's randomness, as ``uuid.uuid4()``."""
    return uuid.UUID(bytes=_random_bytes(), version=4)


def new_run_id() -> str:
    """A version-7 UUID of the current time: run ids sort by when the run was created."""
    return str(uuid7(time.time_ns() // 1_000_000, _random_bytes()))


def new_id() -> str:
    """``str(new_uuid())``: the 36-character form used for run, request and query ids."""
    return str(new_uuid())


def new_hex() -> str:
    """``new_uuid().hex``: the 32-character form used for outbox task ids."""
    return new_uuid().hex
