"""An Odin SDK app with Celery users' expectations (tests of arguments, failures, states, canvases).
Only Odin and the standard library: the workflow sandbox re-imports it."""

from __future__ import annotations

from odin.sdk import App, Retry, workflow
from odin.sdk.celery import chain, chord, group

app = App("billing")

ATTEMPTS: dict[str, int] = {}
CALLED: list[tuple] = []  # what the callbacks were given


class CardDeclined(Exception):
    """An exception of the app's own: comes back from ``get()`` as itself."""


# -- arguments and failures ----------------------------------------------------------------------


@app.activity
def charge(card: str, cents: int) -> str:
    ATTEMPTS[card] = ATTEMPTS.get(card, 0) + 1
    if card.startswith("bad"):
        raise ValueError("bad card")
    if card.startswith("declined"):
        raise CardDeclined(f"{card} declined")
    return f"charged {cents} to {card}"


class GatewayTimeout(Exception):
    pass


@app.activity(autoretry_for=(GatewayTimeout,), max_retries=2, default_retry_delay=0.1)
def flaky(key: str, failures: int, error: str = "timeout") -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] <= failures:
        raise GatewayTimeout(key) if error == "timeout" else KeyError(key)
    return f"{key} after {ATTEMPTS[key]}"


@app.activity(retry=Retry(max_attempts=3, initial_interval=0.1))
def stubborn(key: str) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    raise RuntimeError(f"{key} never works")


@app.workflow
async def pipeline(card: str) -> str:
    return await charge(card, 100)


@app.workflow
async def with_options(card: str, cents: int = 1, *, note: str = "") -> dict:
    return {"card": card, "cents": cents, "note": note}


@app.workflow
async def broken(reason: str) -> str:
    raise ValueError(reason)


@app.workflow
async def declined(card: str) -> str:
    raise CardDeclined(f"{card} declined")


class Ledger:
    """A class-based workflow: the same default."""

    @workflow.run
    async def run(self, amount: int) -> int:
        if amount < 0:
            raise ArithmeticError(f"negative amount {amount}")
        return amount


ledger = app.workflow(Ledger)


@app.workflow(on_error="retry")
async def patient(reason: str) -> str:
    raise ValueError(reason)  # retried as a workflow task until the code changes: the run stays open


@app.workflow
async def approval(order: str) -> str:
    decision: list[str] = []
    workflow.on_signal("decide", decision.append)
    await workflow.wait_condition(lambda: bool(decision))
    if decision[0] == "reject":
        raise CardDeclined(order)
    return f"{order} {decision[0]}"


@app.workflow
async def retrying(key: str) -> str:
    return await flaky(key, 1)


@app.activity(autoretry_for=(GatewayTimeout,), max_retries=5, default_retry_delay=2)
def slow_flaky(key: str) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] == 1:
        raise GatewayTimeout(key)
    return key


@app.workflow
async def slow_retrying(key: str) -> str:
    return await slow_flaky(key)


# -- canvases ---------------------------------------------------------------------------------------


@app.activity
def add(x: int, y: int) -> int:
    return x + y


@app.activity
def mul(x: int, y: int) -> int:
    return x * y


@app.activity
def xsum(numbers: list) -> int:
    return sum(numbers)


@app.activity
def fail(x: int) -> int:
    raise ValueError(f"cannot take {x}")


@app.activity
def record(*args: object) -> str:
    CALLED.append(args)
    return "recorded"


@app.workflow
async def double(x: int) -> int:
    return await mul(x, 2)


@app.workflow
async def fan_out(n: int) -> int:
    """A canvas inside a workflow: run in this workflow's own history."""
    return await chord(group(add.s(i, i) for i in range(n)), xsum.s())


@app.workflow
async def staged(x: int) -> list:
    return await chain(add.s(x, 1), double.s(), group(mul.s(10), add.s(5)))
