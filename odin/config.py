"""Settings from the environment (ODIN_*, DATABASE_URL, REDIS_URL) and CLI flags.

``Settings.from_env()`` is the one place the environment is read; CLI flags override its fields.
"""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from odin.security.auth import AuthConfig

DEFAULT_NUM_SHARDS = 512


def normalize_database_url(url: str) -> str:
    """Accept Heroku-style ``postgres://``; pick the psycopg 3 driver for PostgreSQL and PyMySQL for
    MySQL and MariaDB (``mysql://`` or ``mariadb://``). A value without a scheme is refused: taking
    it for a SQLite path would migrate a new empty file named after a typo."""
    if "://" not in url:
        raise ValueError(
            f"the database URL {url!r} has no scheme: write postgresql://user:password@host/db, "
            f"mysql://user:password@host/db, "
            f"or sqlite:///{url} for a SQLite file"
        )
    scheme, rest = url.split("://", 1)
    base = scheme.split("+", 1)[0]
    if base in ("postgres", "postgresql"):
        return "postgresql+psycopg://" + rest
    if base in ("mysql", "mariadb"):
        return "mysql+pymysql://" + rest
    if base == "sqlite":
        return "sqlite://" + rest
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use postgresql://, mysql:// or sqlite://")


def sqlite_url_for_path(path: str) -> str:
    return "sqlite://" + ("/:memory:" if path == ":memory:" else "/" + os.path.abspath(path))


def database_url_from_env() -> str | None:
    return os.environ.get("ODIN_DATABASE_URL") or os.environ.get("DATABASE_URL")


LOG_FORMATS = ("text", "json")


def log_format_from_env() -> str:
    """``ODIN_LOG_FORMAT``: ``text`` (the default) or ``json`` (one object per line)."""
    value = os.environ.get("ODIN_LOG_FORMAT", "text").strip().lower() or "text"
    if value not in LOG_FORMATS:
        raise ValueError(f"ODIN_LOG_FORMAT must be text or json, not {value!r}")
    return value


def redis_url_from_env() -> str | None:
    return os.environ.get("ODIN_REDIS_URL") or os.environ.get("REDIS_URL")


def sync_database_url() -> str:
    url = database_url_from_env()
    if not url:
        raise RuntimeError("set ODIN_DATABASE_URL (or DATABASE_URL)")
    return normalize_database_url(url)


def redis_tls_options(url: str) -> dict:
    """TLS options for a ``redis`` client or Celery broker on ``url``. Heroku's ``rediss://``
    endpoints present self-signed certificates, so the certificate is not verified there unless
    ODIN_REDIS_TLS_VERIFY=1."""
    if url.startswith("rediss://") and os.environ.get("ODIN_REDIS_TLS_VERIFY") != "1":
        return {"ssl_cert_reqs": ssl.CERT_NONE}
    return {}


def default_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _auth_config(env=None):
    from odin.security.auth import AuthConfig

    return AuthConfig.from_env(env) if env is not None else AuthConfig()


@dataclass
class Settings:
    # SQLAlchemy URL of the database (None only for processes that need none, like Celery beat).
    database_url: str | None
    # Redis for task queues, wake-ups, shard leases and the Celery broker; None runs everything
    # in-process (``odin dev``, or a single ``odin server`` without Redis).
    redis_url: str | None = None
    # Every Redis key Odin (and its Celery broker) writes starts with this.
    redis_prefix: str = "odin:"
    # Each worker long poll holds a Redis connection while it waits: size the pool for them.
    redis_max_connections: int = 1000
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 7233
    http_port: int = 8080
    # Largest request body the REST app reads (larger ones answer 413).
    http_max_request_bytes: int = 4 * 1024 * 1024
    num_shards: int = DEFAULT_NUM_SHARDS
    default_namespace: str = "default"
    # Longest a worker long poll waits before answering empty (Temporal: one minute).
    long_poll_seconds: float = 60.0
    # Redis streams per task queue. They share one hash tag (one Redis Cluster slot), so more than
    # one spreads nothing; the knob is kept for deployments that measure otherwise.
    queue_partitions: int = 1
    # Entries handed to a poller that never confirmed them are handed out again after this long.
    queue_reclaim_seconds: float = 30.0
    # Shard leases: time to live, and how often a holder renews and rebalances.
    shard_lease_seconds: float = 10.0
    # Timers due within this horizon go to Celery with an ETA; later ones wait in SQL.
    timer_horizon_seconds: float = 30.0
    # How often the system jobs run (Celery beat, or the in-process scheduler).
    sweep_timers_seconds: float = 1.0
    sweep_transfers_seconds: float = 2.0
    retention_sweep_seconds: float = 300.0
    # How often a process samples its gauges (outbox, task queue backlog and pollers); 0 = never.
    metrics_sample_seconds: float = 10.0
    # Archive for closed runs past retention (``file://`` built in); None deletes without archiving
    # unless the namespace names its own archive.
    archive_uri: str | None = None
    # Who may call (off unless ODIN_AUTH is set; see odin/security/auth.py).
    auth: AuthConfig = field(default_factory=lambda: _auth_config())
    # Requests per second per namespace, for client calls and for worker polls (0 = unlimited).
    namespace_rps: float = 0.0
    namespace_worker_rps: float = 0.0
    # TLS for the gRPC port: server certificate and key (PEM files); with a client CA, client
    # certificates signed by it are required (mutual TLS). Rotated files are picked up live.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        url = database_url_from_env()
        env = dict(
            database_url=normalize_database_url(url) if url else None,
            redis_url=redis_url_from_env(),
            redis_prefix=os.environ.get("ODIN_REDIS_PREFIX", cls.redis_prefix),
            redis_max_connections=_int("ODIN_REDIS_MAX_CONNECTIONS", cls.redis_max_connections),
            grpc_host=os.environ.get("ODIN_GRPC_HOST", "0.0.0.0"),
            grpc_port=_int("ODIN_GRPC_PORT", cls.grpc_port),
            http_port=_int("PORT", _int("ODIN_HTTP_PORT", cls.http_port)),
            http_max_request_bytes=_int("ODIN_HTTP_MAX_REQUEST_BYTES", cls.http_max_request_bytes),
            num_shards=_int("ODIN_NUM_SHARDS", cls.num_shards),
            default_namespace=os.environ.get("ODIN_DEFAULT_NAMESPACE", cls.default_namespace),
            queue_partitions=_int("ODIN_QUEUE_PARTITIONS", cls.queue_partitions),
            queue_reclaim_seconds=_float("ODIN_QUEUE_RECLAIM_SECONDS", cls.queue_reclaim_seconds),
            shard_lease_seconds=_float("ODIN_SHARD_LEASE_SECONDS", cls.shard_lease_seconds),
            timer_horizon_seconds=_float("ODIN_TIMER_HORIZON_SECONDS", cls.timer_horizon_seconds),
            sweep_timers_seconds=_float("ODIN_SWEEP_TIMERS_SECONDS", cls.sweep_timers_seconds),
            sweep_transfers_seconds=_float("ODIN_SWEEP_TRANSFERS_SECONDS", cls.sweep_transfers_seconds),
            retention_sweep_seconds=_float("ODIN_RETENTION_SWEEP_SECONDS", cls.retention_sweep_seconds),
            metrics_sample_seconds=_float("ODIN_METRICS_SAMPLE_SECONDS", cls.metrics_sample_seconds),
            archive_uri=os.environ.get("ODIN_ARCHIVE_URI") or None,
            auth=_auth_config(os.environ),
            namespace_rps=_float("ODIN_NAMESPACE_RPS", cls.namespace_rps),
            namespace_worker_rps=_float("ODIN_NAMESPACE_WORKER_RPS", cls.namespace_worker_rps),
            tls_cert_file=os.environ.get("ODIN_TLS_CERT_FILE") or None,
            tls_key_file=os.environ.get("ODIN_TLS_KEY_FILE") or None,
            tls_client_ca_file=os.environ.get("ODIN_TLS_CLIENT_CA_FILE") or None,
        )
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        env.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**env)

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)
