"""An Odin app with periodic work (the beat tests). Only Odin and the standard library: the
workflow sandbox re-imports this module."""

from __future__ import annotations

from odin.sdk import App

app = App("periodic")

RUNS: list[tuple[str, str]] = []  # (key, suffix) of each ``record``


@app.activity(start_to_close_timeout=10)
def record(key: str, suffix: str = "") -> str:
    RUNS.append((key, suffix))
    return f"{key}{suffix}"


@app.workflow
async def tick(key: str, suffix: str = "") -> str:
    return await record(key, suffix=suffix)
