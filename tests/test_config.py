"""Settings come from the environment the way Heroku and a plain VM provide it."""

from __future__ import annotations

import ssl

import pytest

from odin.config import Settings, normalize_database_url, redis_tls_options


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("ODIN_DATABASE_URL", "DATABASE_URL", "ODIN_REDIS_URL", "REDIS_URL", "ODIN_NUM_SHARDS", "PORT",
                 "ODIN_HTTP_PORT", "ODIN_REDIS_TLS_VERIFY", "ODIN_REDIS_PREFIX", "ODIN_ARCHIVE_URI"):
        monkeypatch.delenv(name, raising=False)


def test_heroku_style_urls(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example:5432/d1")
    monkeypatch.setenv("REDIS_URL", "rediss://:secret@redis.example:6380")
    monkeypatch.setenv("PORT", "5000")
    s = Settings.from_env()
    assert s.database_url == "postgresql+psycopg://u:p@db.example:5432/d1"
    assert s.redis_url == "rediss://:secret@redis.example:6380"
    assert s.http_port == 5000


def test_odin_variables_win_over_the_generic_ones(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://generic/db")
    monkeypatch.setenv("ODIN_DATABASE_URL", "postgresql://odin/db")
    monkeypatch.setenv("REDIS_URL", "redis://generic")
    monkeypatch.setenv("ODIN_REDIS_URL", "redis://odin")
    monkeypatch.setenv("ODIN_NUM_SHARDS", "64")
    monkeypatch.setenv("ODIN_ARCHIVE_URI", "file:///var/archive")
    s = Settings.from_env()
    assert (s.database_url, s.redis_url, s.num_shards, s.archive_uri) == (
        "postgresql+psycopg://odin/db", "redis://odin", 64, "file:///var/archive"
    )


def test_flags_override_the_environment(monkeypatch):
    monkeypatch.setenv("ODIN_REDIS_URL", "redis://env")
    s = Settings.from_env(redis_url="redis://flag", grpc_port=9000, redis_prefix=None)
    assert s.redis_url == "redis://flag" and s.grpc_port == 9000 and s.redis_prefix == "odin:"
    with pytest.raises(TypeError):
        Settings.from_env(no_such_setting=1)


def test_nothing_configured_means_no_database_and_no_redis():
    s = Settings.from_env()
    assert s.database_url is None and s.redis_url is None


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgres://h/db", "postgresql+psycopg://h/db"),
        ("postgresql://h/db", "postgresql+psycopg://h/db"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("mysql://u:p@h:3306/db", "mysql+pymysql://u:p@h:3306/db"),
        ("mysql+pymysql://h/db", "mysql+pymysql://h/db"),
        ("mariadb://h/db?charset=utf8mb4", "mysql+pymysql://h/db?charset=utf8mb4"),
    ],
)
def test_database_urls(url, expected):
    assert normalize_database_url(url) == expected


def test_unsupported_database_scheme():
    with pytest.raises(ValueError, match="unsupported"):
        normalize_database_url("mongodb://h/db")


def test_a_database_url_without_a_scheme_is_refused_not_taken_for_a_file():
    with pytest.raises(ValueError) as caught:
        normalize_database_url("db.example.com/odin")
    assert str(caught.value) == (
        "the database URL 'db.example.com/odin' has no scheme: write postgresql://user:password@host/db, "
        "mysql://user:password@host/db, or sqlite:///db.example.com/odin for a SQLite file"
    )


def test_rediss_skips_certificate_checks_unless_asked(monkeypatch):
    assert redis_tls_options("redis://h") == {}
    assert redis_tls_options("rediss://h") == {"ssl_cert_reqs": ssl.CERT_NONE}
    monkeypatch.setenv("ODIN_REDIS_TLS_VERIFY", "1")
    assert redis_tls_options("rediss://h") == {}
