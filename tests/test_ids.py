"""odin.ids: random version-4 UUIDs read from the OS in batches, and version-7 run ids."""

from __future__ import annotations

import threading
import uuid

from odin.ids import new_hex, new_id, new_uuid


def test_ids_are_distinct_version_4_uuids():
    ids = [new_uuid() for _ in range(2000)]  # several batches
    assert len(set(ids)) == len(ids)
    assert {u.version for u in ids} == {4}
    assert {u.variant for u in ids} == {uuid.RFC_4122}
    assert uuid.UUID(new_id()).version == 4
    assert len(new_hex()) == 32 and uuid.UUID(hex=new_hex()).version == 4


def test_threads_draw_distinct_ids():
    seen: list[list[str]] = [[] for _ in range(4)]

    def draw(bucket: list[str]) -> None:
        bucket.extend(new_id() for _ in range(600))

    threads = [threading.Thread(target=draw, args=(bucket,)) for bucket in seen]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    every = [i for bucket in seen for i in bucket]
    assert len(set(every)) == len(every) == 2400


def test_run_ids_are_version_7_uuids_that_sort_by_time():
    import time

    from odin.ids import new_run_id
    from odin.uuids import uuid7

    before = time.time_ns() // 1_000_000
    ids = [uuid.UUID(new_run_id()) for _ in range(500)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert {(u.version, u.variant) for u in ids} == {(7, uuid.RFC_4122)}
    assert all(before <= u.int >> 80 <= after for u in ids)
    # The layout: 48 bits of milliseconds, the version, then the entropy's bits.
    u = uuid7(0x0123456789AB, bytes(range(1, 11)))
    assert str(u) == "01234567-89ab-7010-8304-05060708090a"
    assert (u.int >> 80, u.version, u.variant) == (0x0123456789AB, 7, uuid.RFC_4122)
    assert uuid7(1, bytes(10)) < uuid7(2, b"\xff" * 10)
