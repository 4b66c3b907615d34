"""Small asyncio helpers shared by the background loops."""

from __future__ import annotations

import asyncio


async def cancel_and_wait(*tasks: asyncio.Task | None) -> None:
    """Cancel background tasks and wait until they have finished (their errors are dropped). A task
    still running half a second after its cancel is cancelled again: a library call it was in may
    have taken the first cancellation for its own (it then carries on to its next await)."""
    running = {t for t in tasks if t is not None}
    while running:
        for task in running:
            task.cancel()
        done, running = await asyncio.wait(running, timeout=0.5)
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: not logged as never retrieved
