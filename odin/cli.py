"""The ``odin`` command."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import click

from odin import __version__, commands
from odin.commands._common import namespace_missing, unreachable
from odin.config import (
    DEFAULT_NUM_SHARDS,
    Settings,
    database_url_from_env,
    normalize_database_url,
    sqlite_url_for_path,
)


@click.group()
@click.version_option(__version__, prog_name="odin")
@click.option("--log-level", default="WARNING", show_default=True, help="Python logging level.")
def main(log_level: str) -> None:
    """Odin: durable workflows speaking Temporal's WorkflowService API."""
    from odin import logs

    _settings(logs.configure, log_level)


async def _serve(settings: Settings, banner: str, auto_migrate: bool, serve_http: bool = False) -> None:
    from odin import metrics
    from odin.api.grpc.server import PortUnavailable
    from odin.server import NotMigrated, OdinServer, Unreachable

    if not serve_http:  # with the REST app in the process, /metrics is served there
        metrics.serve_from_env()
    server = OdinServer(settings, auto_migrate=auto_migrate, serve_http=serve_http)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        endpoints = await server.start()
    except (NotMigrated, Unreachable, ValueError, PortUnavailable) as exc:
        await server.stop()
        raise click.ClickException(str(exc)) from None
    click.echo(
        banner.format(grpc=f"{endpoints.grpc_host}:{endpoints.grpc_port}", http=f"{endpoints.grpc_host}:{endpoints.http_port}"),
        err=False,
    )
    sys.stdout.flush()
    await stop.wait()
    click.echo("odin: shutting down")
    await server.stop()


def _run_server(make_main) -> None:
    """Run a server's coroutine on uvloop's event loop when it is installed (fewer instructions per
    request than asyncio's own loop; docs/performance.md), unless ``ODIN_EVENT_LOOP=asyncio``."""
    choice = os.environ.get("ODIN_EVENT_LOOP", "auto").lower()
    if choice not in ("auto", "uvloop", "asyncio"):
        raise click.ClickException(f"bad configuration: ODIN_EVENT_LOOP must be auto, uvloop or asyncio, not {choice!r}")
    factory = None
    if choice != "asyncio":
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            if choice == "uvloop":
                raise click.ClickException("ODIN_EVENT_LOOP=uvloop but uvloop is not installed") from None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(make_main())


def _settings(make, *args, **kwargs):
    """Build settings; a bad value is a usage error, not a traceback."""
    try:
        return make(*args, **kwargs)
    except (ValueError, OSError) as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None


@main.command()
@click.option("--db", "db_path", default="./odin.db", show_default=True, help="SQLite file; ':memory:' for throw-away.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--grpc-port", default=7233, show_default=True, type=int, help="gRPC (WorkflowService) port; 0 picks one.")
@click.option("--http-port", default=8080, show_default=True, type=int, help="HTTP port (REST API and web UI); 0 picks one.")
@click.option("--namespace", default="default", show_default=True, help="Namespace created on start.")
@click.option("--auth", is_flag=True, help="Require bearer tokens, configured by ODIN_JWT_* / ODIN_API_KEYS (off by default).")
def dev(db_path: str, host: str, grpc_port: int, http_port: int, namespace: str, auth: bool) -> None:
    """Run every role in one process on SQLite with in-memory queues.

    The other ODIN_* settings (auth, rate limits, request size, TLS...) come from the environment
    as for ``odin server``; the database and Redis URLs do not: dev is self-contained."""
    from odin.security.auth import AuthConfig

    settings = _settings(
        Settings.from_env,
        database_url=sqlite_url_for_path(db_path),
        grpc_host=host,
        grpc_port=grpc_port,
        http_port=http_port,
        default_namespace=namespace,
        auth=_settings(AuthConfig.from_env, {**os.environ, "ODIN_AUTH": "on"}) if auth else None,
    ).with_(redis_url=None)
    banner = f"Odin dev server: gRPC on {{grpc}}, web UI and REST API on http://{{http}}/, database {db_path}, namespace '{namespace}'"
    _run_server(lambda: _serve(settings, banner, auto_migrate=True, serve_http=True))


@main.command()
@click.option("--database-url", envvar=["ODIN_DATABASE_URL", "DATABASE_URL"], required=True, help="SQL database URL.")
@click.option(
    "--redis-url",
    envvar=["ODIN_REDIS_URL", "REDIS_URL"],
    default=None,
    help="Redis URL; with it the server runs in the distributed shape (Celery runs the timers).",
)
@click.option("--redis-prefix", envvar="ODIN_REDIS_PREFIX", default="odin:", show_default=True, help="Prefix of every Redis key.")
@click.option("--host", envvar="ODIN_GRPC_HOST", default="0.0.0.0", show_default=True)
@click.option("--grpc-port", envvar="ODIN_GRPC_PORT", default=7233, show_default=True, type=int)
@click.option("--num-shards", envvar="ODIN_NUM_SHARDS", default=DEFAULT_NUM_SHARDS, show_default=True, type=int,
              help="History shards; fixed when the database is first used.")
@click.option("--tls-cert", envvar="ODIN_TLS_CERT_FILE", default=None, help="Server certificate (PEM) for TLS on gRPC.")
@click.option("--tls-key", envvar="ODIN_TLS_KEY_FILE", default=None, help="Its private key (PEM).")
@click.option("--tls-client-ca", envvar="ODIN_TLS_CLIENT_CA_FILE", default=None,
              help="CA of accepted client certificates: clients must present one (mutual TLS).")
def server(
    database_url: str,
    redis_url: str | None,
    redis_prefix: str,
    host: str,
    grpc_port: int,
    num_shards: int,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
) -> None:
    """Run the gRPC front door against a migrated database."""
    # Production keeps its audit trail (a line per mutating call) whatever --log-level says.
    audit = logging.getLogger("odin.audit")
    if audit.level == logging.NOTSET:
        audit.setLevel(logging.INFO)
    settings = _settings(
        Settings.from_env,
        database_url=_settings(normalize_database_url, database_url),
        redis_url=redis_url or None,
        redis_prefix=redis_prefix,
        grpc_host=host,
        grpc_port=grpc_port,
        num_shards=num_shards,
        tls_cert_file=tls_cert,
        tls_key_file=tls_key,
        tls_client_ca_file=tls_client_ca,
    )
    shape = "distributed (Redis queues, Celery timers)" if settings.redis_url else "single process"
    _run_server(lambda: _serve(settings, "Odin server: gRPC on {grpc}, " + shape, auto_migrate=False))


def load_app(spec: str):
    """``package.module:app`` (or ``package.module``, whose ``app`` is taken) -> the Odin SDK app."""
    import importlib

    from odin.sdk import App

    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like celery -A: the app's package is found from here
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.ClickException(f"cannot import {module_name}: {exc}") from None
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, App):
        raise click.ClickException(f"{spec} is not an odin.sdk.App")
    return app


# Where a build id comes from when --build-id is not given: Odin's own variable, then what Heroku
# sets (SOURCE_VERSION at build time, HEROKU_BUILD_COMMIT / HEROKU_SLUG_COMMIT with dyno metadata).
BUILD_ID_VARIABLES = ("ODIN_BUILD_ID", "SOURCE_VERSION", "HEROKU_BUILD_COMMIT", "HEROKU_SLUG_COMMIT")


def _versioning(
    app_name: str, build_id: str | None, deployment: str | None, default_versioning: str, make_current: bool, ramp: float | None
) -> dict:
    """The worker's deployment options: versioned when a build id or a deployment is named (on
    the command line, or ODIN_DEPLOYMENT)."""
    deployment = deployment or os.environ.get("ODIN_DEPLOYMENT") or None
    if build_id is None and deployment is None:
        if make_current or ramp is not None:
            raise click.UsageError("--make-current and --ramp need --build-id or --deployment")
        return {}
    build_id = build_id or next((os.environ[v] for v in BUILD_ID_VARIABLES if os.environ.get(v)), None)
    if not build_id:
        raise click.UsageError(f"--deployment needs a build id: --build-id, or one of {', '.join(BUILD_ID_VARIABLES)}")
    if make_current and ramp is not None:
        raise click.UsageError("--make-current and --ramp exclude each other")
    promote = 100.0 if make_current else ramp
    return {"build_id": build_id, "deployment": deployment or app_name, "default_versioning": default_versioning, "promote": promote}


@main.command()
@click.option("-A", "--app", "app_spec", required=True, help="The app: package.module:app.")
@click.option("-Q", "--queues", default=None, help="Comma-separated task queues (default: every queue the app uses).")
@click.option("-c", "--concurrency", default=10, show_default=True, type=int, help="Activities run at once (threads for sync ones).")
@click.option("--grace", default=30.0, show_default=True, type=float, help="Seconds running activities get to finish on shutdown.")
@click.option("--replay-check", default=0, show_default=True, type=int,
              help="Before polling, replay this many recent runs of each workflow through the code; refuse to start on a mismatch.")
@click.option("--status-every", default=10.0, show_default=True, type=float, help="Seconds between status lines (0: none).")
@click.option("--max-cached-workflows", default=1000, show_default=True, type=int,
              help="Workflows kept in memory between tasks (0: replay every task from history).")
@click.option("--sticky-timeout", default=10.0, show_default=True, type=float,
              help="Seconds a cached workflow's task waits for this worker before any worker may take it.")
@click.option("-B", "--beat", is_flag=True,
              help="Before polling, sync the app's schedules (conf.beat_schedule, app.schedule) as `odin beat --once` does.")
@click.option("--build-id", default=None,
              help="Poll as this build (a version of the deployment); default from ODIN_BUILD_ID, SOURCE_VERSION, "
                   "HEROKU_BUILD_COMMIT or HEROKU_SLUG_COMMIT when --deployment is given. See docs/deploy.md.")
@click.option("--deployment", default=None,
              help="The worker deployment (default: the app's name when --build-id is given; ODIN_DEPLOYMENT).")
@click.option("--default-versioning", type=click.Choice(["pinned", "auto-upgrade"]), default="pinned", show_default=True,
              help="Runs stay on the build that started them, or move to the current build at their next workflow task.")
@click.option("--make-current", is_flag=True, help="Once polling, make this build the deployment's current version.")
@click.option("--ramp", default=None, type=click.FloatRange(0, 100),
              help="Once polling, send this percentage of new runs to this build (the rest stay on the current one).")
@click.option("--exit-when-drained", is_flag=True,
              help="With a build id: stop (exit 0) once this version is drained: no longer current or ramping "
                   "and no run pinned to it open. Checked every 30 seconds (ODIN_DRAIN_CHECK_SECONDS).")
@click.option("--address", default=None, help="The server's gRPC address (default: the app's, from ODIN_ADDRESS).")
@click.option("--namespace", default=None, help="The namespace (default: the app's, from ODIN_NAMESPACE).")
def worker(
    app_spec: str,
    queues: str | None,
    concurrency: int,
    grace: float,
    replay_check: int,
    status_every: float,
    max_cached_workflows: int,
    sticky_timeout: float,
    beat: bool,
    build_id: str | None,
    deployment: str | None,
    default_versioning: str,
    make_current: bool,
    ramp: float | None,
    exit_when_drained: bool,
    address: str | None,
    namespace: str | None,
) -> None:
    """Run the workers of an Odin SDK app (its workflows and activities)."""
    from odin.sdk import ReplayMismatch, ScheduleError

    _uses_temporal_runtime()
    app = load_app(app_spec)
    app.address = address or app.address
    app.namespace = namespace or app.namespace
    versioning = _versioning(app.name, build_id, deployment, default_versioning, make_current, ramp)
    if exit_when_drained and not versioning:
        raise click.UsageError("--exit-when-drained needs --build-id or --deployment")
    host = app.worker(
        queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
        concurrency=concurrency,
        grace=grace,
        replay_check=replay_check,
        status_every=status_every,
        max_cached_workflows=max_cached_workflows,
        sticky_schedule_to_start=sticky_timeout,
        **versioning,
        exit_when_drained=float(os.environ.get("ODIN_DRAIN_CHECK_SECONDS") or 30) if exit_when_drained else 0.0,
    )
    click.echo(f"odin worker for {app.name}: {app.address}, namespace {app.namespace}, queues {', '.join(host.queue_names())}")
    if host.build_id:
        click.echo(f"deployment {host.deployment_name()}, build {host.build_id} ({host.default_versioning})")
    sys.stdout.flush()

    async def serve() -> None:
        if beat:
            await _sync_schedules(app)
        await host.run()

    try:
        asyncio.run(serve())
    except (ReplayMismatch, ScheduleError) as exc:
        raise click.ClickException(str(exc)) from None
    except RuntimeError as exc:
        raise _worker_start_error(app, exc) from None
    click.echo(f"odin worker: stopped ({host.stop_reason})" if host.stop_reason else "odin worker: stopped")


def _worker_start_error(app, exc: RuntimeError) -> click.ClickException:
    """One line for the ways temporalio's core refuses to start: no server, no such namespace."""
    text = str(exc)
    if text.startswith("Failed client connect"):
        return unreachable(app.address, text)
    if text.startswith("Worker validation failed") and "NotFound" in text:
        return namespace_missing(app.namespace, app.address)
    raise exc


async def _sync_schedules(app) -> None:
    """Sync the app's schedules and say what changed."""
    from temporalio.service import RPCError

    try:
        report = await app.sync_schedules_async()
    except RPCError as exc:  # e.g. an unknown namespace, a refused token
        raise commands.explain(exc, commands.Target(app.address, app.namespace, None, False, "table")) from None
    click.echo(f"odin beat for {app.name}: schedules {report}")
    for what in ("created", "updated", "deleted"):
        for schedule_id in getattr(report, what):
            click.echo(f"  {what} {schedule_id}")
    sys.stdout.flush()


@main.command()
@click.option("-A", "--app", "app_spec", required=True, help="The app: package.module:app.")
@click.option("--address", default=None, help="The server's gRPC address (default: the app's, from ODIN_ADDRESS).")
@click.option("--namespace", default=None, help="The namespace (default: the app's, from ODIN_NAMESPACE).")
@click.option("--once", is_flag=True, help="Exit once the schedules are synced.")
def beat(app_spec: str, address: str | None, namespace: str | None, once: bool) -> None:
    """Sync an app's periodic tasks to Odin schedules, then wait until stopped.

    Each entry of conf.beat_schedule (Celery's format) and each app.schedule(...) becomes the
    schedule beat:<app>:<entry>: created if missing, updated if its entry changed, deleted once
    its entry is gone. The server starts the runs; this process only syncs, so it stays up (as
    `celery beat` does, for process managers that restart what exits) doing nothing more, unless
    --once."""
    from odin.sdk import ScheduleError

    _uses_temporal_runtime()
    app = load_app(app_spec)
    app.address = address or app.address
    app.namespace = namespace or app.namespace

    async def run() -> None:
        await _sync_schedules(app)
        if once:
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(run())
    except ScheduleError as exc:
        raise click.ClickException(str(exc)) from None
    except RuntimeError as exc:
        raise _worker_start_error(app, exc) from None
    if not once:
        click.echo("odin beat: stopped")


@main.group()
def workflow() -> None:
    """Workflow commands: list, count, describe, show, start, signal, query, cancel, terminate,
    delete, result; export a history, replay histories through code."""


@workflow.command("history")
@click.argument("workflow_id")
@click.option("--run-id", default="", help="A run of the workflow (default: the current one).")
@click.option("--address", envvar="ODIN_ADDRESS", default="127.0.0.1:7233", show_default=True)
@click.option("--namespace", envvar="ODIN_NAMESPACE", default="default", show_default=True)
@click.option("--api-key", envvar="ODIN_API_KEY", default=None, help="Bearer token, when the server wants one.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None, help="Write here, not to stdout.")
def workflow_history(workflow_id: str, run_id: str, address: str, namespace: str, api_key: str | None, output: str | None) -> None:
    """Export a run's history as JSON (the REST API's form: payloads as plain JSON)."""
    import json

    from temporalio.api.history.v1 import History
    from temporalio.client import Client

    from odin.api.rest.codec import to_json

    _uses_temporal_runtime()

    async def fetch() -> dict:
        client = await Client.connect(address, namespace=namespace, api_key=api_key, tls=False)
        history = await client.get_workflow_handle(workflow_id, run_id=run_id or None).fetch_history()
        return {"workflowId": workflow_id, "history": to_json(History(events=history.events))}

    try:
        document = asyncio.run(fetch())
    except Exception as exc:  # connection refused, unknown namespace or workflow...
        raise commands.explain(exc, commands.Target(address, namespace, api_key, False, "json")) from None
    text = json.dumps(document, indent=2)
    if output:
        with open(output, "w") as f:
            f.write(text + "\n")
    else:
        click.echo(text)


@workflow.command("replay")
@click.option("-A", "--app", "app_spec", required=True, help="The app whose code to replay through: package.module:app.")
@click.argument("histories", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def workflow_replay(app_spec: str, histories: tuple[str, ...]) -> None:
    """Replay exported histories through the app's current code (non-zero exit on a mismatch)."""
    from odin.sdk.testing import replay

    _uses_temporal_runtime()
    app = load_app(app_spec)
    failed = 0
    for path in histories:
        try:
            asyncio.run(replay(app, path))
            click.echo(f"ok       {path}")
        except Exception as exc:
            failed += 1
            click.echo(f"MISMATCH {path}: {exc}")
    if failed:
        raise click.ClickException(f"{failed} of {len(histories)} histories do not replay through {app_spec}")


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command()
@click.option("--database-url", envvar=["ODIN_DATABASE_URL", "DATABASE_URL"], default=None, help="SQL database URL.")
def upgrade(database_url: str | None) -> None:
    """Migrate the database to the newest schema (alembic upgrade head)."""
    from odin.persistence import migrate
    from odin.persistence.store import open_database

    url = database_url or database_url_from_env()
    if not url:
        raise click.ClickException("set ODIN_DATABASE_URL or DATABASE_URL, or pass --database-url")

    import sqlalchemy.exc

    from odin.runtime import database_unreachable

    normalized = _settings(normalize_database_url, url)

    async def run() -> None:
        db = open_database(normalized)
        try:
            await migrate.upgrade(db)
        except sqlalchemy.exc.OperationalError as exc:
            raise click.ClickException(str(database_unreachable(normalized, exc))) from None
        finally:
            await db.dispose()

    asyncio.run(run())
    click.echo("database is at the newest schema")


commands.register(main, workflow)


def _uses_temporal_runtime() -> None:
    """Said by commands that run temporalio's core (a client or a worker); see ``run``."""
    commands.uses_temporal_runtime()


def run() -> None:
    """The ``odin`` console entry point.

    temporalio's core keeps native threads that may call into Python while the interpreter
    finalizes, which aborts the process now and then (``PyGILState_Release`` during
    finalization). A command that ran it ends the process itself once its output is flushed,
    with the exit code it chose, instead of going through interpreter teardown."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    if not commands.temporal_runtime_used():
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
