"""Every shell and Python snippet of README.md and docs/*.md runs as written, against a fresh
`odin dev`, so the docs cannot drift from the code.

A snippet is a ```bash or ```python block. The HTML comment on the line before it says how:

- none: run it (bash with ``set -e``; Python as a script), in document order, in one folder;
- ``<!-- run: as NAME, in the background, expect "TEXT" -->``: any of those parts — save the
  snippet as NAME (default ``snippet-N``), keep it running for the later snippets, require TEXT in
  its output (for a background one: before the next snippet runs);
- ``<!-- not run: REASON -->``: skipped, and counted in the report;
- ``<!-- from PATH -->``: a quote of an example module, which tests/odin_sdk/test_celery_migration.py
  checks against that module.

The docs name the default ports (7233, 8080); the test runs `odin dev` on free ones and rewrites
those addresses in the snippets.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:^<!--(?P<marker>[^\n]*?)-->\n)?^```(?P<lang>bash|python|sh)\n(?P<code>.*?)^```", re.S | re.M)


@dataclass
class Snippet:
    path: Path
    line: int
    lang: str
    code: str
    marker: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def snippets() -> list[Snippet]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for m in BLOCK.finditer(text):
            found.append(Snippet(path, text[: m.start("lang")].count("\n") + 1, m.group("lang"), m.group("code"),
                                 (m.group("marker") or "").strip()))
    return found


def test_every_marker_is_understood():
    for s in snippets():
        assert s.marker == "" or re.match(r"(run: |not run: \S|from \S)", s.marker), f"{s.where}: unknown marker {s.marker!r}"


@pytest.fixture
def dev(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "odin.cli", "dev", "--db", str(tmp_path / "odin.db"), "--grpc-port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    banner = proc.stdout.readline()
    found = re.search(r"gRPC on (\S+), web UI and REST API on http://(\S+)/", banner)
    assert found, banner
    yield found.group(1), found.group(2)
    proc.terminate()
    proc.wait(timeout=30)


def _rewrite(code: str, grpc: str, http: str) -> str:
    for host in ("127.0.0.1", "localhost"):
        code = code.replace(f"{host}:7233", grpc).replace(f"{host}:8080", http)
    return code


def _output(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _temporalio_exit_abort(done: subprocess.CompletedProcess) -> bool:
    """The temporalio client's known crash at interpreter exit (temporalio/sdk-python#300): a Rust
    runtime thread releases the GIL while Python finalizes, and CPython aborts. It happens after the
    script's last line ran, so the snippet's own work (and its expected output) is still checked."""
    return (done.returncode == -signal.SIGABRT and "PyGILState_Release" in done.stderr
            and "Python runtime state: finalizing" in done.stderr)


def test_the_snippets_run_as_written(dev, tmp_path, capsys):
    grpc, http = dev
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", ODIN_ADDRESS=grpc, NO_COLOR="1",
               PYTHONPATH=str(ROOT))
    ran, skipped, quoted, background = [], [], [], []
    try:
        for i, s in enumerate(snippets()):
            if s.marker.startswith("not run:"):
                skipped.append(s)
                continue
            if s.marker.startswith("from "):
                quoted.append(s)
                continue
            options = s.marker.removeprefix("run:")
            name = (re.search(r"\bas (\S+?),?(?:\s|$)", options) or [None, f"snippet-{i}.{'py' if s.lang == 'python' else 'sh'}"])[1]
            expect = (re.search(r'expect "([^"]*)"', options) or [None, None])[1]
            script = work / name
            script.write_text(_rewrite(s.code, grpc, http))
            command = [sys.executable, script.name] if s.lang == "python" else ["bash", "-e", "-o", "pipefail", script.name]
            log = work / f"{name}.out"
            if "background" in options:
                proc = subprocess.Popen(command, cwd=work, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
                background.append(proc)
                deadline = time.monotonic() + 60
                while expect and expect not in _output(log):
                    assert proc.poll() is None, f"{s.where} exited {proc.returncode}:\n{_output(log)}"
                    assert time.monotonic() < deadline, f"{s.where}: no {expect!r} in 60 s:\n{_output(log)}"
                    time.sleep(0.2)
            else:
                done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=120)
                assert done.returncode == 0 or _temporalio_exit_abort(done), \
                    f"{s.where} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
                assert expect is None or expect in done.stdout, f"{s.where}: no {expect!r} in:\n{done.stdout}"
            ran.append(s)
    finally:
        for proc in background:
            proc.terminate()
            proc.wait(timeout=30)
    summary = (f"doc snippets: {len(ran)} run, {len(skipped)} skipped by a `not run:` marker, "
               f"{len(quoted)} quotes of example modules (checked by test_celery_migration)")
    with capsys.disabled():
        print(f"\n{summary}")
    assert len(ran) >= 5, summary  # the README's own walk-through at least


def test_only_the_temporalio_exit_abort_is_excused():
    aborted = subprocess.run([sys.executable, "-c", "print('done'); import os; os.abort()"],
                             capture_output=True, text=True, timeout=60)
    assert aborted.returncode == -signal.SIGABRT
    assert not _temporalio_exit_abort(aborted)
    known = subprocess.CompletedProcess(aborted.args, -signal.SIGABRT, "done\n", (
        "Fatal Python error: PyGILState_Release: thread state 0x7f371c001870 must be current when releasing\n"
        "Python runtime state: finalizing (tstate=0x00007f372c576ef8)\n"))
    assert _temporalio_exit_abort(known)
    assert not _temporalio_exit_abort(subprocess.CompletedProcess(aborted.args, 1, "", known.stderr))
