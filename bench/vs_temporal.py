"""Benchmark: `odin dev` against the real Temporal dev server, same workload, same SDK code.

    python bench/vs_temporal.py [--workflows 200] [--serial-workflows 50] [--concurrency 50]
                                [--no-serial] [--rounds 2] [--temporal-wal] [--json]

Each round starts `odin dev` (SQLite) and then `temporal server start-dev` (SQLite, headless, on
a throw-away file and free ports; ``--temporal-wal`` gives its SQLite odin dev's settings: WAL,
synchronous=NORMAL), one after the other so they never share the machine, and runs the
one-activity workflow of bench/run.py through the same temporalio worker and client:
``--workflows`` at ``--concurrency`` and ``--serial-workflows`` at concurrency 1 (unless
``--no-serial``). Rounds alternate the servers (odin, temporal, odin, temporal...). It prints, per
run and then as the median over the rounds with the ratio Odin/Temporal: throughput, p50/p99
start-to-result latency, and CPU (user+system) per workflow of the server and of this process
(the SDK worker + client), over the measured window only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402
from common import SELF, SERVERS, CpuMeter, connect, handle_interrupts, percentile, running_server, temporal_version  # noqa: E402
from run import measure_one_activity  # noqa: E402

METRICS = ("throughput_wps", "latency_p50_ms", "latency_p99_ms", "server_cpu_ms_per_wf", "sdk_cpu_ms_per_wf")
HEADER = f"{'wf/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'server CPU ms/wf':>18}{'SDK CPU ms/wf':>15}"


async def measure(port: int, server_pid: int, workflows: int, concurrency: int) -> dict:
    client = await connect(port)
    meter = CpuMeter({"server": server_pid, "sdk": SELF})
    latencies, wall = await measure_one_activity([client], workflows, concurrency, meter)
    cpu = meter.per_workflow_ms(workflows)
    return {
        "workflows": workflows,
        "concurrency": concurrency,
        "throughput_wps": round(workflows / wall, 1),
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "server_cpu_ms_per_wf": cpu["server"],
        "sdk_cpu_ms_per_wf": cpu["sdk"],
    }


def run_server(name: str, levels: list[tuple[int, int]], temporal_wal: bool) -> list[dict]:
    """Start server ``name`` fresh, measure each (concurrency, workflows), stop it."""
    with running_server(name, temporal_wal) as server:
        return [asyncio.run(measure(server.port, server.proc.pid, workflows, concurrency)) for concurrency, workflows in levels]


def row(f: dict) -> str:
    return (f"{f['throughput_wps']:>8}{f['latency_p50_ms']:>9}{f['latency_p99_ms']:>9}"
            f"{f['server_cpu_ms_per_wf']:>18}{f['sdk_cpu_ms_per_wf']:>15}")


def summarize(runs: list[dict], concurrencies: list[int]) -> list[dict]:
    """Median over the rounds of each figure, per concurrency and server, and Odin/Temporal."""
    out = []
    for c in concurrencies:
        medians = {}
        for server in SERVERS:
            mine = [r for r in runs if r["server"] == server and r["concurrency"] == c]
            medians[server] = {m: round(statistics.median(r[m] for r in mine), 2) for m in METRICS}
        ratio = {m: round(medians["odin"][m] / medians["temporal"][m], 2) if medians["temporal"][m] else None for m in METRICS}
        out.append({"concurrency": c, **medians, "ratio_odin_to_temporal": ratio})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=200, help="workflows per run at --concurrency")
    parser.add_argument("--serial-workflows", type=int, default=50, help="workflows per run at concurrency 1")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--no-serial", action="store_true", help="skip the concurrency-1 runs")
    parser.add_argument("--rounds", type=int, default=2, help="odin then temporal, this many times")
    parser.add_argument("--temporal-wal", action="store_true",
                        help="run Temporal's SQLite in WAL mode, synchronous=NORMAL (as odin dev does)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_eager_start_option(parser)
    args = parser.parse_args()
    run.EAGER_START = args.eager_start
    handle_interrupts()
    version = temporal_version()  # also fails early, with the install line, without the CLI

    levels = [(args.concurrency, args.workflows)]
    if not args.no_serial and args.concurrency != 1:
        levels.append((1, args.serial_workflows))
    runs = []
    for round_ in range(1, args.rounds + 1):
        for server in SERVERS:
            for f in run_server(server, levels, args.temporal_wal):
                runs.append({"round": round_, "server": server, **f})
                if not args.json:
                    print(f"round {round_}  {server:<9} concurrency {f['concurrency']:>3}, {f['workflows']:>4} wf:{row(f)}", flush=True)
    summary = summarize(runs, [c for c, _ in levels])
    temporal_sqlite = "WAL, synchronous=NORMAL" if args.temporal_wal else "Temporal's default settings (rollback journal)"
    if args.json:
        print(json.dumps({"temporal": version, "temporal_sqlite": temporal_sqlite, "servers": SERVERS, "runs": runs, "median": summary}))
        return
    print(f"\nmedian of {args.rounds} round(s); one-activity workflows; temporal CLI {version}, SQLite {temporal_sqlite}")
    print(f"{'concurrency':<13}{'server':<15}{HEADER}")
    for s in summary:
        for server in SERVERS:
            print(f"{s['concurrency']:<13}{server:<15}{row(s[server])}")
        print(f"{s['concurrency']:<13}{'odin/temporal':<15}{row(s['ratio_odin_to_temporal'])}")


if __name__ == "__main__":
    main()
