"""odin.ids: random version-4 UUIDs read from the OS in batches."""

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
