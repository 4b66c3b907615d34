"""The Odin SDK side of ``bench/sdk.py``: the same one-activity workflow as ``bench/run.py``'s."""

from __future__ import annotations

from odin.sdk import App

app = App("bench")


@app.activity(start_to_close_timeout=30)
async def echo(value: str) -> str:
    return value


@app.workflow
async def one_activity(value: str) -> str:
    return await echo(value)
