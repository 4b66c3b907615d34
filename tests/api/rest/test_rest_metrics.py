"""``/metrics``: the seed's four metrics, fed by real workflows."""

from __future__ import annotations

import logging
import re
import socket

from rest_support import wid
from rest_workflows import Greet, shout
from temporalio.worker import Worker


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (0 if absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_workflows_replays_queue_latency_and_shards(served_sqlite, sdk, task_queue):
    before = (await served_sqlite.get("/metrics")).get_data(as_text=True)
    # No workflow cache: every task after the first hands the worker the whole history to replay.
    async with Worker(sdk, task_queue=task_queue, workflows=[Greet], activities=[shout], max_cached_workflows=0):
        assert (await sdk.execute_workflow(Greet.run, args=["metrics", {}], id=wid("m"), task_queue=task_queue))
    response = await served_sqlite.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    after = response.get_data(as_text=True)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("workflow_duration_seconds_count", namespace="default", workflow_type="Greet", status="completed") == 1
    assert grew("workflow_replay_count_total", namespace="default", workflow_type="Greet") >= 1
    assert grew("task_queue_latency_seconds_count", queue_name=task_queue, task_type="workflow") >= 2
    assert grew("task_queue_latency_seconds_count", queue_name=task_queue, task_type="activity") == 1
    # odin dev holds every shard (this server has 4).
    assert sum(1 for line in after.splitlines() if line.startswith("history_shard_ownership{")) >= 4


def test_a_metrics_port_taken_by_another_process_is_a_warning_not_a_crash(monkeypatch, caplog):
    from odin import metrics
    from tests.distributed.cluster import free_port

    taken = socket.socket()
    taken.bind(("127.0.0.1", free_port()))
    taken.listen()
    try:
        monkeypatch.setenv("ODIN_METRICS_PORT", str(taken.getsockname()[1]))
        monkeypatch.setenv("ODIN_METRICS_HOST", "127.0.0.1")
        with caplog.at_level(logging.WARNING, logger="odin.metrics"):
            assert metrics.serve_from_env() is None
        assert "not serving on port" in caplog.text
    finally:
        taken.close()
