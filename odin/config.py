"""Settings from the environment (ODIN_*, DATABASE_URL, REDIS_URL) and CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_NUM_SHARDS = 512


def normalize_database_url(url: str) -> str:
    """Accept Heroku-style ``postgres://`` and plain paths; pick the psycopg 3 driver for PostgreSQL."""
    if "://" not in url:
        url = "sqlite:///" + url
    scheme, rest = url.split("://", 1)
    base = scheme.split("+", 1)[0]
    if base in ("postgres", "postgresql"):
        return "postgresql+psycopg://" + rest
    if base == "sqlite":
        return "sqlite://" + rest
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use postgresql:// or sqlite://")


def sqlite_url_for_path(path: str) -> str:
    return "sqlite://" + ("/:memory:" if path == ":memory:" else "/" + os.path.abspath(path))


def database_url_from_env() -> str | None:
    return os.environ.get("ODIN_DATABASE_URL") or os.environ.get("DATABASE_URL")


def sync_database_url() -> str:
    url = database_url_from_env()
    if not url:
        raise RuntimeError("set ODIN_DATABASE_URL (or DATABASE_URL)")
    return normalize_database_url(url)


@dataclass
class Settings:
    database_url: str
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 7233
    http_port: int = 8080
    num_shards: int = DEFAULT_NUM_SHARDS
    default_namespace: str = "default"
    # Longest a worker long poll waits before answering empty (Temporal: one minute).
    long_poll_seconds: float = 60.0
    extra: dict = field(default_factory=dict)
