"""Users' type checkers see the SDK's types: ``@app.workflow``/``@app.activity`` keep the function's
parameters and result, so ``delay``, handles, child calls and ``workflow.execute_activity`` are
checked. The snippet below is run through ``mypy --strict``: the correct uses pass, and each line
marked ``# E: <text>`` must get an error containing that text (and no other line any error)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SNIPPET = '''
from odin.sdk import App, Retry, WorkflowHandle, workflow

app = App("typed")


@app.activity(retry=Retry(max_attempts=3), start_to_close_timeout=10)
def charge(order_id: str, cents: int) -> str:
    return f"{order_id}:{cents}"


@app.activity
async def ship(order_id: str, *, express: bool = False) -> int:
    return 2 if express else 1


@app.workflow
async def checkout(order_id: str, cents: int) -> dict[str, str]:
    receipt: str = await workflow.execute_activity(charge, order_id, cents)
    tracking: int = await workflow.execute_activity(ship, order_id, kwargs={"express": True}, queue="fast")
    await charge(order_id, cents)  # a plain call inside a workflow schedules the activity too
    return {"receipt": receipt, "tracking": str(tracking)}


@app.workflow(name="parent", execution_timeout=60)
async def parent(order_id: str) -> str:
    result: dict[str, str] = await checkout(order_id, 100)  # a child: its result type
    return result["receipt"]


def start() -> str:
    handle: WorkflowHandle[dict[str, str]] = checkout.delay("o-1", 100)
    result: dict[str, str] = handle.get(timeout=30)
    later: str = parent.apply_async(("o-2",), countdown=5).get()
    started: str = parent.start("o-3", id="p-3", queue="q").result()
    return result["receipt"] + later + started


async def wrong() -> None:
    checkout.delay("o-1", "100")  # E: Argument 2 to "delay" of "WorkflowFunction" has incompatible type "str"; expected "int"
    checkout.delay("o-1")  # E: Missing positional argument "cents" in call to "delay" of "WorkflowFunction"
    n: int = checkout.delay("o-1", 1).get()  # E: Incompatible types in assignment (expression has type "dict[str, str]", variable has type "int")
    checkout.start("o-1", 1, queu="q")  # E: Unexpected keyword argument "queu" for "start" of "WorkflowFunction"
    charge("o-1", cents="1")  # E: Argument "cents" to "__call__" of "ActivityFunction" has incompatible type "str"; expected "int"
    (await workflow.execute_activity(ship, "o-1")).upper()  # E: "int" has no attribute "upper"
    await parent(1)  # E: Argument 1 to "__call__" of "WorkflowFunction" has incompatible type "int"; expected "str"


@app.workflow(retry="3")  # E: No overload variant of "workflow" of "App" matches argument type "str"
async def misconfigured() -> None:
    pass
'''


def test_mypy_checks_calls_through_the_decorated_functions(tmp_path):
    source = tmp_path / "typed_app.py"
    source.write_text(SNIPPET)
    done = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--no-color-output",
            # The SDK's own errors are tests/test_static_checks.py's business; only the snippet's here.
            "--follow-imports=silent",
            "--cache-dir", str(ROOT / ".mypy_cache" / "sdk-typing"),
            str(source),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode in (0, 1), done.stderr or done.stdout
    errors: dict[int, list[str]] = {}
    for match in re.finditer(r"^[^\n]*typed_app\.py:(\d+): error: ([^\n]*)$", done.stdout, re.M):
        errors.setdefault(int(match.group(1)), []).append(match.group(2))
    expected = {
        number: line.split("# E: ", 1)[1]
        for number, line in enumerate(SNIPPET.splitlines(), start=1)
        if "# E: " in line
    }
    assert len(expected) == 8
    for number, text in expected.items():
        assert any(text in message for message in errors.get(number, [])), (number, text, done.stdout)
    unexpected = {number: messages for number, messages in errors.items() if number not in expected}
    assert not unexpected, done.stdout
