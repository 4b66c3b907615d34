"""odin.aio.cancel_and_wait: background loops stop even when a call they were in took the
cancellation for its own (as a client library's clean-up can), instead of hanging the shutdown."""

from __future__ import annotations

import asyncio

from odin.aio import cancel_and_wait


async def test_a_task_that_swallows_its_first_cancel_is_cancelled_again():
    rounds = []

    async def loop() -> None:
        while True:
            try:
                await asyncio.sleep(10)  # a call that ends quietly when cancelled
            except asyncio.CancelledError:
                rounds.append("swallowed")
            rounds.append("next round")
            await asyncio.sleep(10)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), 5)
    assert task.cancelled() and rounds == ["swallowed", "next round"]


async def test_errors_of_finished_tasks_are_dropped_and_none_is_skipped():
    async def fails() -> None:
        raise ValueError("boom")

    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait(failed, None)
    assert isinstance(failed.exception(), ValueError)
