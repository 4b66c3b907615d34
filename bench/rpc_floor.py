"""Benchmark: the CPU a gRPC server written with Python's grpcio spends per call, before any work.

    python bench/rpc_floor.py [--calls 5000] [--concurrency 50] [--peer temporal] [--json]

Three servers answer ``GetSystemInfo`` (a call with no state and no I/O) from this process's grpc.aio
client, and the CPU (user+system) of each server over the measured window is divided by the calls:

- ``bare grpc.aio``: a WorkflowService servicer with only that method, in a child process; what
  grpcio itself costs per unary call (HTTP/2, the C core, the asyncio glue, protobuf).
- ``odin dev``: the same call through Odin's whole request path (authentication, authorization,
  rate limits, audit, metrics).
- ``--peer temporal``: the Temporal dev server (Go), for scale.

A one-activity workflow run by the temporalio SDK makes at least six such calls to the server
(start, two workflow-task completions, the activity completion, a workflow-task poll, the result's
history long poll; one more poll without eager start), so six times the bare figure is a floor
under any Python server's CPU per workflow, whatever it does with the calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import grpc
from temporalio.api.workflowservice.v1 import request_response_pb2 as rr
from temporalio.api.workflowservice.v1 import service_pb2_grpc as svc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CpuMeter, Processes, cleaning, free_port, handle_interrupts, running_server  # noqa: E402

# The calls a one-activity workflow makes at least (see the docstring).
CALLS_PER_WORKFLOW = 6


class _Bare(svc.WorkflowServiceServicer):
    async def GetSystemInfo(self, request, context):  # noqa: N802 (the generated method name)
        return rr.GetSystemInfoResponse(server_version="bare")


async def _serve_bare(port: int) -> None:
    server = grpc.aio.server()
    svc.add_WorkflowServiceServicer_to_server(_Bare(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"bare grpc.aio on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


async def _call(port: int, calls: int, concurrency: int) -> float:
    """Make ``calls`` GetSystemInfo calls, ``concurrency`` at a time; returns the wall seconds."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = svc.WorkflowServiceStub(channel)
        todo = iter(range(calls))

        async def caller() -> None:
            for _ in todo:
                await stub.GetSystemInfo(rr.GetSystemInfoRequest(), timeout=10)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return time.perf_counter() - started


def _measure(pid: int, port: int, calls: int, concurrency: int) -> dict:
    asyncio.run(_call(port, min(500, calls), concurrency))  # warm-up: connections, caches
    meter = CpuMeter({"server": pid})
    with meter:
        wall = asyncio.run(_call(port, calls, concurrency))
    per_call = meter.per_workflow_ms(calls)["server"]
    return {
        "calls_per_s": round(calls / wall),
        "server_cpu_ms_per_call": per_call,
        "floor_ms_per_workflow": round(per_call * CALLS_PER_WORKFLOW, 2),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-bare":
        asyncio.run(_serve_bare(int(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--peer", choices=["temporal"], default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    handle_interrupts()

    results: dict[str, dict] = {}
    procs = Processes()
    with cleaning(procs.stop):
        port = free_port()
        bare = procs.start([sys.executable, __file__, "--serve-bare", str(port)], ready="bare grpc.aio on")
        results["bare grpc.aio"] = _measure(bare.pid, port, args.calls, args.concurrency)
        procs.stop()
    for name in ["odin"] + ([args.peer] if args.peer else []):
        with running_server(name) as server:
            label = "odin dev" if name == "odin" else "temporal dev server"
            results[label] = _measure(server.proc.pid, server.port, args.calls, args.concurrency)

    if args.json:
        print(json.dumps({"calls": args.calls, "concurrency": args.concurrency, "servers": results}, indent=2))
        return
    print(f"GetSystemInfo, {args.calls} calls, {args.concurrency} in flight")
    print(f"{'':24}{'calls/s':>10}{'server CPU ms/call':>20}{f'x {CALLS_PER_WORKFLOW} calls/wf':>16}")
    for label, r in results.items():
        print(f"{label:24}{r['calls_per_s']:>10}{r['server_cpu_ms_per_call']:>20.3f}{r['floor_ms_per_workflow']:>16.2f}")


if __name__ == "__main__":
    main()
