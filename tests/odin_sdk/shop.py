"""An Odin SDK app used by the SDK tests (a module of its own: the workflow sandbox re-imports it)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from odin.sdk import App, Retry, activity, workflow

app = App("shop")  # address, namespace and task queue from ODIN_* when set

ATTEMPTS: dict[str, int] = {}


@app.activity(retry=Retry(max_attempts=5, initial_interval=0.1), start_to_close_timeout=10)
def charge(order_id: str, cents: int) -> str:
    """Fails twice per order, then succeeds (a sync activity: runs in the thread pool)."""
    ATTEMPTS[order_id] = ATTEMPTS.get(order_id, 0) + 1
    if ATTEMPTS[order_id] < 3:
        raise RuntimeError("card network timeout")
    return f"receipt-{order_id}-{cents}"


@app.activity(start_to_close_timeout=10)
async def ship(order_id: str, *, express: bool = False) -> str:
    await asyncio.sleep(0)
    return f"{'express' if express else 'ground'}:{order_id}"


@app.activity(heartbeat_timeout=1, start_to_close_timeout=20)
async def slow_pack(order_id: str) -> str:
    await asyncio.sleep(2.5)  # longer than the heartbeat timeout: only auto-heartbeats keep it alive
    return f"packed:{order_id}"


@app.workflow
async def checkout(order_id: str, cents: int, express: bool = False) -> dict:
    state = {"status": "charging"}
    workflow.on_query("status", lambda: state["status"])
    receipt = await charge(order_id, cents)
    state["status"] = "shipping"
    tracking = await ship(order_id, express=express)
    return {"receipt": receipt, "tracking": tracking}


@app.workflow
async def pack(order_id: str) -> str:
    return await slow_pack(order_id)


@app.workflow
async def approval(order_id: str) -> str:
    decision: dict = {}
    workflow.on_signal("decide", lambda verdict: decision.update(verdict=verdict))
    workflow.on_update("note", lambda text: decision.setdefault("notes", []).append(text) or len(decision["notes"]),
                       validator=lambda text: _reject_empty(text))
    if not await workflow.wait_condition(lambda: "verdict" in decision, timeout=timedelta(days=7)):
        return "expired"
    return f"{decision['verdict']} ({len(decision.get('notes', []))} notes)"


def _reject_empty(text: str) -> None:
    if not text:
        raise ValueError("a note cannot be empty")


@app.workflow
async def parent(order_id: str) -> str:
    result = await checkout(order_id, 100)  # calling a workflow from a workflow: a child
    return f"child said {result['tracking']}"


@app.workflow
async def countdown(n: int) -> int:
    if n > 0:
        workflow.continue_as_new(n - 1)
    return n


@app.activity(start_to_close_timeout=30, heartbeat_timeout=2)
async def long_export(order_id: str) -> str:
    for step in range(activity.heartbeat_details()[0] if activity.heartbeat_details() else 0, 50):
        activity.heartbeat(step)  # progress a retry could resume from
        await asyncio.sleep(0.1)
    return f"exported:{order_id}"


@app.workflow
async def scoped(timeout: float, cancel_by_hand: bool) -> str:
    async with workflow.CancellationScope(timeout=timeout) as scope:
        if cancel_by_hand:
            scope.cancel()
        await long_export("scoped")
    return "cancelled" if scope.cancelled else "finished"


@app.workflow
async def outer_cancel_passes_through() -> str:
    async with workflow.CancellationScope():
        await workflow.sleep(3600)  # the workflow itself is cancelled: that is not the scope's own
    return "unreachable"


@app.workflow
class Cart:
    """A class-based workflow with signal, query and update handlers."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.closed = False

    @workflow.run
    async def run(self, owner: str) -> dict:
        await workflow.wait_condition(lambda: self.closed)
        return {"owner": owner, "items": self.items}

    @workflow.signal
    def add(self, item: str) -> None:
        self.items.append(item)

    @workflow.query
    def count(self) -> int:
        return len(self.items)

    @workflow.update
    def checkout(self) -> int:
        self.closed = True
        return len(self.items)


@app.workflow
async def ledger(total: int, runs: int) -> dict:
    """Sums signalled amounts; every third amount the run continues as new with the sum so far."""
    state = {"total": total, "seen": 0, "closed": False}

    def add(amount: int) -> None:
        state["total"] += amount
        state["seen"] += 1

    workflow.on_signal("add", add)
    workflow.on_signal("close", lambda: state.update(closed=True))
    workflow.on_query("total", lambda: state["total"])
    await workflow.wait_condition(lambda: state["seen"] >= 3 or state["closed"])
    if not state["closed"]:
        workflow.continue_as_new(state["total"], runs + 1)
    return {"total": state["total"], "runs": runs + 1}
