"""The shipped alert rules and Grafana dashboard against a real Prometheus scraping a running
`odin dev` (Debian's `prometheus` package; .ci/run installs it).

One module fixture: `odin dev` on ephemeral ports, Prometheus scraping its `/metrics` every second
and evaluating a copy of docs/prometheus/alerts.yml whose rules keep their expressions but fire
without waiting (`for: 0s`). Workers run a good workflow and one whose workflow task always fails;
`OdinWorkflowTaskFailures` must fire for it, and every dashboard query must evaluate.

The evaluated dashboard queries and their values are written to ``ODIN_PROMETHEUS_REPORT`` (default:
``prometheus-queries.txt`` in the test's temp dir) and printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.worker import Worker

from tests.support.services import skip_or_fail

DOCS = Path(__file__).resolve().parents[1] / "docs"
ALERTS = DOCS / "prometheus" / "alerts.yml"
DASHBOARD = DOCS / "grafana" / "odin.json"


@activity.defn(name="metrics_echo")
async def echo(x: str) -> str:
    return x


@activity.defn(name="metrics_flaky")
async def flaky(x: str) -> str:
    if activity.info().attempt == 1:
        raise RuntimeError("first attempt fails")
    return x


@workflow.defn(name="MetricsGood")
class Good:
    @workflow.run
    async def run(self, x: str) -> str:
        await workflow.execute_activity(
            flaky, x, start_to_close_timeout=timedelta(seconds=10), retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=10))
        )
        return await workflow.execute_activity(echo, x, start_to_close_timeout=timedelta(seconds=10))


@workflow.defn(name="MetricsBroken")
class Broken:
    @workflow.run
    async def run(self) -> None:
        # Not a Temporal failure: the SDK fails the workflow task (and retries it), not the run.
        raise RuntimeError("broken on purpose")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} is not installed (Debian: apt-get install prometheus)")
    return path  # type: ignore[return-value]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _query(prom: str, expr: str) -> dict:
    return _get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = predicate()
        except OSError:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def _test_rules(tmp: Path) -> Path:
    """The real rules file with every ``for:`` set to 0s (expressions untouched)."""
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["for"] = "0s"
    path = tmp / "alerts.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    prometheus = _binary("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    grpc_port, http_port, prom_port = _free_port(), _free_port(), _free_port()
    env = {**os.environ, "ODIN_METRICS_SAMPLE_SECONDS": "0.5"}
    env.pop("ODIN_METRICS_PORT", None)
    odin = subprocess.Popen(
        [sys.executable, "-m", "odin.cli", "dev", "--db", str(tmp / "odin.db"), "--grpc-port", str(grpc_port),
         "--http-port", str(http_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(_test_rules(tmp))],
        "scrape_configs": [{"job_name": "odin-dev", "static_configs": [{"targets": [f"127.0.0.1:{http_port}"]}]}],
    }))
    prom_log = open(tmp / "prometheus.log", "w")
    prom = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--storage.tsdb.retention.time=1h"],
        stdout=prom_log, stderr=subprocess.STDOUT,
    )
    try:
        line = odin.stdout.readline()
        assert "gRPC on 127.0.0.1:" in line, line
        base = f"http://127.0.0.1:{prom_port}"
        _wait(lambda: _get(f"{base}/api/v1/status/runtimeinfo")["status"] == "success", 30, "Prometheus to start")
        yield {"prom": base, "grpc": f"127.0.0.1:{grpc_port}", "http": f"http://127.0.0.1:{http_port}", "tmp": tmp}
    finally:
        for proc in (prom, odin):
            proc.terminate()
        for proc in (prom, odin):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        prom_log.close()


@pytest.fixture(scope="module")
def traffic(stack):
    """Work for every door: good workflows through gRPC, REST reads, a task on a queue nobody polls,
    and a run whose workflow task keeps failing (its worker stays up, on a thread of its own, until
    the module's tests are done); then wait until Prometheus has scraped the failures."""
    ready, stop = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    async def drive() -> None:
        client = await Client.connect(stack["grpc"])
        queue = f"prom-{uuid.uuid4().hex[:8]}"
        async with Worker(client, task_queue=queue, workflows=[Good, Broken], activities=[echo, flaky]):
            # Twice, a few scrapes apart: the first round creates the series, the second moves their rates.
            for i in range(6):
                assert await client.execute_workflow(Good.run, f"x{i}", id=f"good-{i}-{uuid.uuid4()}", task_queue=queue) == f"x{i}"
                if i == 2:
                    await asyncio.sleep(2.5)
            # A short workflow task timeout: the SDK reports the first failure, then lets each retry time out.
            await client.start_workflow(
                Broken.run, id=f"broken-{uuid.uuid4()}", task_queue=queue, task_timeout=timedelta(seconds=1)
            )
            await client.start_workflow(Good.run, "late", id=f"late-{uuid.uuid4()}", task_queue=f"{queue}-idle")
            for round in range(2):
                for _ in range(3):
                    with urllib.request.urlopen(f"{stack['http']}/api/v1/namespaces/default/workflows", timeout=10) as r:
                        assert r.status == 200
                try:  # an error for the error panels: NOT_FOUND through REST
                    urllib.request.urlopen(f"{stack['http']}/api/v1/namespaces/default/workflows/no-such-{uuid.uuid4()}", timeout=10)
                except urllib.error.HTTPError as exc:
                    assert exc.code == 404
                else:
                    raise AssertionError("an unknown workflow was found")
                if round == 0:
                    await asyncio.sleep(2.5)
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.1)

    def run() -> None:
        try:
            asyncio.run(drive())
        except BaseException as exc:  # reported by the fixture
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(60) and not errors, errors
        _wait(
            lambda: _query(stack["prom"], 'sum(workflow_task_failures_total{workflow_type="MetricsBroken"})')["data"]["result"],
            20, "the failures to be scraped",
        )
        # The last REST call of the second round has been scraped (so both rounds are in).
        _wait(
            lambda: _query(stack["prom"], 'sum(service_errors_total{door="rest",status="NOT_FOUND"}) == 2')["data"]["result"],
            20, "the REST calls to be scraped",
        )
        yield stack
    finally:
        stop.set()
        thread.join(30)


def test_promtool_accepts_the_alert_rules():
    promtool = _binary("promtool")
    result = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_workflow_task_failure_alert_fires_and_healthy_ones_stay_quiet(traffic):
    prom = traffic["prom"]

    def firing() -> list[dict]:
        alerts = _get(f"{prom}/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["state"] == "firing"]

    fired = _wait(
        lambda: [a for a in firing() if a["labels"]["alertname"] == "OdinWorkflowTaskFailures"], 30, "the alert to fire"
    )
    assert fired[0]["labels"]["workflow_type"] == "MetricsBroken"
    assert fired[0]["labels"]["severity"] == "warning"
    assert float(fired[0]["value"]) > 0
    # The loaded rules are the shipped ones (same expressions), only their `for:` differs.
    loaded = {r["name"]: r for g in _get(f"{prom}/api/v1/rules")["data"]["groups"] for r in g["rules"]}
    shipped = {r["alert"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]}
    assert set(loaded) == set(shipped)
    for name, rule in shipped.items():
        assert _squeezed(loaded[name]["query"]) == _squeezed(_normalized(prom, rule["expr"])), name
    # odin dev owns every shard, answers without server errors and fires its timers on time.
    quiet = {"OdinShardOwnershipLost", "OdinErrorBudgetBurn", "OdinTimersOverdue", "OdinShardLeaseLost"}
    assert quiet.isdisjoint(a["labels"]["alertname"] for a in firing())


def _normalized(prom: str, expr: str) -> str:
    """An expression as Prometheus prints it back (to compare with the loaded rules)."""
    return _get(f"{prom}/api/v1/format_query?" + urllib.parse.urlencode({"query": expr}))["data"]


def _squeezed(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def _metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if expr[m.end():].lstrip().startswith("("):
            continue  # a function or aggregation
        if m.group() not in {"and", "or", "unless", "bool", "offset", "inf", "Inf", "NaN"}:
            names.add(m.group())
    return names


def _exposed_names(text: str) -> set[str]:
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if kind == "counter":
            names.add(name + "_total")
        elif kind == "histogram":
            names.update({name + "_bucket", name + "_count", name + "_sum"})
    return names


def test_every_dashboard_query_evaluates_on_metrics_odin_exposes(traffic):
    prom = traffic["prom"]
    dashboard = json.loads(DASHBOARD.read_text())
    with urllib.request.urlopen(f"{traffic['http']}/metrics", timeout=10) as r:
        exposed = _exposed_names(r.read().decode())
    targets = [(p["title"], t["expr"]) for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]
    assert len(targets) >= 30
    report, missing, empty = [], [], []
    for title, expr in targets:
        query = expr.replace("$__rate_interval", "2m").replace("$namespace", ".*")
        missing += [(title, name) for name in _metric_names(query) if name not in exposed]
        answer = _query(prom, query)
        assert answer["status"] == "success", (title, query, answer)
        result = answer["data"]["result"]
        if not result:
            empty.append(title)
        values = ", ".join(
            f"{json.dumps(s['metric'], sort_keys=True) if s['metric'] else '{}'}={float(s['value'][1]):.4g}" for s in result[:6]
        )
        report.append(f"{title}\n  {query}\n  -> {values or '(no series)'}")
    assert not missing, missing
    text = "\n".join(report)
    path = Path(os.environ.get("ODIN_PROMETHEUS_REPORT") or traffic["tmp"] / "prometheus-queries.txt")
    path.write_text(text + "\n")
    print(text)
    # What odin dev does serves data to the panels of its parts (not Redis or Celery: it has neither).
    for title in ("Requests/s by door", "Backlog per task queue", "Shards owned / total", "Workflows closed /s by status",
                  "Workflow task failures /s by cause", "Persistence p99 by operation", "Events committed /s by type"):
        assert title not in empty, title


def test_every_metric_is_listed_in_the_operations_guide():
    from prometheus_client.metrics import MetricWrapperBase

    from odin import metrics

    listed = (DOCS / "operations.md").read_text()
    names = {metrics.pool_collector.collect().__next__().name}
    for value in vars(metrics).values():
        metric = value.metric if isinstance(value, metrics.Family) else value
        if isinstance(metric, MetricWrapperBase):
            names.add(metric._name + ("_total" if metric._type == "counter" else ""))
    assert len(names) >= 35
    assert [name for name in sorted(names) if f"| `{name}` |" not in listed] == []


def test_a_family_keeps_its_label_sets_bounded():
    from prometheus_client import CollectorRegistry, Counter

    from odin.metrics import OTHER, Family

    family = Family(Counter("bounded_test", "A test counter.", ["namespace"], registry=CollectorRegistry()), max_children=3)
    for i in range(10):
        family.get(f"ns{i}").inc()
    assert family.get("ns0") is family.get("ns0")  # cached: the same child each time
    assert family.label_sets() == [("ns0",), ("ns1",), ("ns2",), (OTHER,)]
    assert family.get(OTHER)._value.get() == 7
