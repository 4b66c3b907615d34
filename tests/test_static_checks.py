"""Static checks in the suite: ruff over the whole tree must be clean, the pure core and the SDK's
public surface pass ``mypy --strict``, and mypy's errors on the rest of odin/ may only go down (per
file, against tests/mypy-baseline.json). After fixing type errors, shrink the baseline with
``python tests/test_static_checks.py --update``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = Path(__file__).with_name("mypy-baseline.json")

# The Odin SDK's public modules and the private ones whose classes and functions they export.
SDK = [
    "sdk/__init__.py", "sdk/activity.py", "sdk/workflow.py", "sdk/celery.py", "sdk/testing.py",
    "sdk/_app.py", "sdk/_beat.py", "sdk/_defs.py", "sdk/_effects.py", "sdk/_errors.py", "sdk/_flow.py", "sdk/_handles.py",
    "sdk/_options.py", "sdk/_payloads.py", "sdk/_primitives.py", "sdk/_worker.py",
]


def mypy_errors_per_file() -> Counter:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--no-color-output"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode in (0, 1), done.stderr or done.stdout  # 2 is a crash or a configuration error
    return Counter(m.group(1) for m in re.finditer(r"^(odin/[^:]+):\d+: error:", done.stdout, re.M))


def test_ruff_finds_nothing():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "odin", "tests", "bench", "examples"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_errors_only_go_down():
    baseline = json.loads(BASELINE.read_text())
    current = mypy_errors_per_file()
    grown = {f: (baseline.get(f, 0), n) for f, n in current.items() if n > baseline.get(f, 0)}
    assert not grown, f"new type errors (file: (baseline, now)): {grown}; run mypy to see them"
    assert sum(current.values()) > 0 or not baseline, "no errors left: empty tests/mypy-baseline.json"


def assert_strict_mypy_passes(paths: list[str], cache: str) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--no-color-output",
            # Errors are reported for these modules only; what they import is checked by the baseline.
            "--follow-imports=silent",
            # A cache of its own: the baseline run's options differ, and would invalidate a shared one.
            "--cache-dir", str(ROOT / ".mypy_cache" / cache),
            *(f"odin/{path}" for path in paths),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_pure_core_passes_strict_mypy():
    # The modules of docs/architecture.md#pure-core, as tests/history/test_core_purity.py lists them.
    from tests.history.test_core_purity import CORE

    assert_strict_mypy_passes(CORE, "strict-core")


def test_the_sdk_passes_strict_mypy():
    assert_strict_mypy_passes(SDK, "strict-sdk")


def test_the_sdk_list_covers_its_modules():
    assert sorted(SDK) == sorted(f"sdk/{p.name}" for p in (ROOT / "odin" / "sdk").glob("*.py"))


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    BASELINE.write_text(json.dumps(dict(sorted(mypy_errors_per_file().items())), indent=2) + "\n")
    print(f"wrote {BASELINE}")
