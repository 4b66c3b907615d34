"""Workflows written with the coordination primitives, as docs/sdk.md shows them (its own module:
the workflow sandbox re-imports it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from odin.sdk import (
    App,
    Channel,
    DeterministicEffectStore,
    ErrGroup,
    Result,
    Retry,
    VersionGate,
    WaitGroup,
    go,
    workflow,
)

app = App("seeded")

CANCELLED: list[str] = []


@app.activity(start_to_close_timeout=10)
async def run_worker(n: int) -> int:
    return n * n


@app.activity(start_to_close_timeout=10)
async def process_task(task: str) -> str:
    return task.upper()


@app.activity(start_to_close_timeout=10, retry=Retry(max_attempts=1))
async def explode(task: str) -> str:
    await asyncio.sleep(0.3)
    raise ValueError(f"cannot process {task}")


@app.activity(start_to_close_timeout=30, heartbeat_timeout=1)
async def linger(task: str) -> str:
    try:
        await asyncio.sleep(20)
    except asyncio.CancelledError:
        CANCELLED.append(task)  # the cancellation reached the activity through its heartbeat
        raise
    return task


@app.activity(start_to_close_timeout=10, retry=Retry(non_retryable=["ValueError"]))
async def execute_activity_step(amount: int) -> int:
    if amount < 0:
        raise ValueError("negative amount")
    return amount


@app.workflow
async def wait_group(worker_count: int) -> list[int]:
    # var wg = new WaitGroup(); wg.Add(workerCount); ... Go(async () => { defer(() => wg.Done()); ... }); await wg.Wait();
    results: list[int] = [0] * worker_count
    wg = WaitGroup()
    wg.add(worker_count)
    for i in range(worker_count):

        async def worker(i: int = i) -> None:
            try:
                results[i] = await run_worker(i)
            finally:
                wg.done()

        go(worker)
    await wg.wait()
    return results


@app.workflow
async def err_group(tasks: list[str]) -> list[str]:
    # var eg = new ErrGroup(); foreach (var task in tasks) { eg.Go(async () => await ProcessTask(t)); } await eg.Wait();
    eg = ErrGroup()
    for task in tasks:
        eg.go(process_task, task)
    return await eg.wait()


@app.workflow
async def err_group_fails_fast(tasks: list[str]) -> str:
    eg = ErrGroup()
    eg.go(explode, "bad")
    for task in tasks:
        eg.go(linger, task)
    try:
        await eg.wait()
    except Exception as exc:  # noqa: BLE001 - the first error, after the siblings were cancelled
        return f"failed: {exc}"
    return "no error?"


@app.workflow
async def channel(items: list[str], buffer_size: int) -> list[str]:
    # var ch = Channel<WorkflowTask>(bufferSize: 100); Go(async () => { await foreach (var task in ch.Reader...) ... });
    ch: Channel[str] = Channel(buffer_size=buffer_size)
    done: list[str] = []

    async def consume() -> None:
        async for task in ch:
            done.append(await process_task(task))

    consumer = go(consume)
    for item in items:
        await ch.send(item)
    ch.close()
    await consumer
    return done


@app.workflow
async def result_pipeline(amount: int) -> dict:
    # await ExecuteActivity().Then(ProcessResult).Recover(HandleError).Ensure(...).Finally(LogCompletion);
    log: list[str] = []
    value = await (
        Result.of(execute_activity_step(amount))
        .then(lambda v: v * 2)
        .recover(lambda err: 0)
        .ensure(lambda v: v < 1000, "too large")
        .finally_(lambda r: log.append("ok" if r.ok else f"error: {r.error}"))
        .recover(lambda err: -1)
    )
    return {"value": value, "log": log}


def utc_now(record: str) -> datetime:
    """Captured outside the workflow: it may read the clock. Each call leaves a line in ``record``."""
    with open(record, "a") as f:
        f.write("called\n")
    return datetime.now(UTC)


@app.workflow
async def effects(record: str) -> str:
    # var timestamp = store.GetOrCapture("timestamp", () => DateTime.UtcNow);
    store = DeterministicEffectStore()
    released: list[bool] = []
    workflow.on_signal("release", lambda: released.append(True))
    timestamp = await store.get_or_capture("timestamp", lambda: utc_now(record))
    again = await store.get_or_capture("timestamp", lambda: utc_now(record))  # once per run and key
    await workflow.wait_condition(lambda: bool(released))
    assert again == timestamp
    return timestamp.isoformat()


@app.workflow
async def versioned() -> str:
    gate = VersionGate()
    if gate.is_enabled("new-payment-flow", version=2):
        return "v2"
    return "v1"
