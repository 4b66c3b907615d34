"""Workflows that wait a long time (for the time-skipping tests)."""

from __future__ import annotations

from datetime import timedelta

from odin.sdk import App, Retry, workflow

app = App("reminders")

CALLS: dict[str, int] = {}


@app.activity(start_to_close_timeout=10)
async def send_reminder(user: str) -> str:
    return f"reminded {user}"


@app.activity(start_to_close_timeout=10, retry=Retry(initial_interval=3600, backoff=1.0, max_attempts=3))
async def flaky_once(key: str) -> int:
    CALLS[key] = CALLS.get(key, 0) + 1
    if CALLS[key] == 1:
        raise RuntimeError("try again in an hour")
    return CALLS[key]


@app.workflow
async def reminder(user: str) -> dict:
    started = workflow.now()
    await workflow.sleep(timedelta(days=7))
    message = await send_reminder(user)
    return {"message": message, "waited_days": (workflow.now() - started).total_seconds() / 86400}


@app.workflow
async def hourly_retry(key: str) -> int:
    return await flaky_once(key)


@app.workflow
async def deadline(hours: float) -> str:
    done: list[bool] = []
    workflow.on_signal("done", lambda: done.append(True))
    if await workflow.wait_condition(lambda: bool(done), timeout=timedelta(hours=hours)):
        return "done in time"
    return "deadline passed"
