"""Random ids (UUID version 4) for runs, outbox tasks and requests.

``uuid.uuid4()`` makes one ``getrandom`` system call per id, and CPython releases the GIL around
it: on the event loop thread each id is a chance for a database thread to take the GIL and keep it
for up to a switch interval. Here the same kernel randomness is read 256 ids at a time, per thread.
"""

from __future__ import annotations

import os
import threading
import uuid

_BATCH = 256
_local = threading.local()


def new_uuid() -> uuid.UUID:
    """A random (version 4) UUID from the operating system's randomness, as ``uuid.uuid4()``."""
    pool = getattr(_local, "pool", None)
    if not pool:
        raw = os.urandom(16 * _BATCH)
        pool = _local.pool = [raw[i : i + 16] for i in range(0, len(raw), 16)]
    return uuid.UUID(bytes=pool.pop(), version=4)


def new_id() -> str:
    """``str(new_uuid())``: the 36-character form used for run, request and query ids."""
    return str(new_uuid())


def new_hex() -> str:
    """``new_uuid().hex``: the 32-character form used for outbox task ids."""
    return new_uuid().hex
