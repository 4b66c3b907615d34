"""The ``odin`` command."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import click

from odin.config import (
    DEFAULT_NUM_SHARDS,
    Settings,
    database_url_from_env,
    normalize_database_url,
    sqlite_url_for_path,
)


@click.group()
@click.option("--log-level", default="WARNING", show_default=True, help="Python logging level.")
def main(log_level: str) -> None:
    """Odin: durable workflows speaking Temporal's WorkflowService API."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def _serve(settings: Settings, banner: str, auto_migrate: bool, serve_http: bool = False) -> None:
    from odin.server import NotMigrated, OdinServer

    server = OdinServer(settings, auto_migrate=auto_migrate, serve_http=serve_http)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        endpoints = await server.start()
    except (NotMigrated, ValueError) as exc:
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
    """Run every role in one process on SQLite with in-memory queues."""
    from odin.api.auth import AuthConfig

    settings = _settings(
        Settings,
        database_url=sqlite_url_for_path(db_path),
        grpc_host=host,
        grpc_port=grpc_port,
        http_port=http_port,
        default_namespace=namespace,
        auth=_settings(AuthConfig.from_env, {**os.environ, "ODIN_AUTH": "on"}) if auth else AuthConfig(),
    )
    banner = f"Odin dev server: gRPC on {{grpc}}, web UI and REST API on http://{{http}}/, database {db_path}, namespace '{namespace}'"
    asyncio.run(_serve(settings, banner, auto_migrate=True, serve_http=True))


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
    settings = _settings(
        Settings.from_env,
        database_url=normalize_database_url(database_url),
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
    asyncio.run(_serve(settings, "Odin server: gRPC on {grpc}, " + shape, auto_migrate=False))


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

    async def run() -> None:
        db = open_database(normalize_database_url(url))
        try:
            await migrate.upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(run())
    click.echo("database is at the newest schema")


if __name__ == "__main__":  # pragma: no cover
    main()
