"""The Odin SDK app the CLI tests drive with `odin worker -A greeter:app`."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from odin.sdk import App, Retry, workflow

app = App("clitest")


@app.activity(start_to_close_timeout=10)
def shout(text: str) -> str:
    return text.upper()


@app.activity(start_to_close_timeout=10, retry=Retry(max_attempts=0, initial_interval=1, max_interval=1))
def always_down(service: str) -> str:
    raise ConnectionError(f"{service} is down")


@app.workflow
async def stuck_on(service: str) -> str:
    return await always_down(service)


@app.workflow
async def greet(name: str) -> str:
    return f"Hello, {await shout(name)}!"


@app.workflow
async def waiter(first: str) -> list:
    """Collects the `add` signals until `finish`; the `items` query reads them."""
    items = [first]
    done: list[bool] = []
    workflow.on_signal("add", items.append)
    workflow.on_signal("finish", lambda: done.append(True))
    workflow.on_query("items", lambda: list(items))

    def add_and_count(item) -> int:
        items.append(item)
        return len(items)

    workflow.on_update("add_and_count", add_and_count)
    await workflow.wait_condition(lambda: bool(done))
    return items


@app.workflow
async def broken(reason: str) -> None:
    raise ApplicationError(reason, non_retryable=True)
