"""Start-up mistakes end in one line that names the cause and the fix, with a non-zero exit."""

from __future__ import annotations

import socket

from cli_support import HERE, odin, one_line_error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_db_upgrade_on_an_unreachable_database(tmp_path):
    port = _free_port()
    done = odin("db", "upgrade", "--database-url", f"postgresql://odin:secret@127.0.0.1:{port}/odin")
    message = one_line_error(done, 1)
    assert message.startswith(
        f"cannot reach the database at postgresql+psycopg://odin:***@127.0.0.1:{port}/odin (ODIN_DATABASE_URL / DATABASE_URL): "
    ), message
    assert "secret" not in done.stderr


def test_a_database_url_without_a_scheme_creates_nothing(tmp_path):
    for command in (["db", "upgrade"], ["server", "--grpc-port", "0"]):
        done = odin(*command, env={"ODIN_DATABASE_URL": "odin.db"})
        assert one_line_error(done, 1) == (
            "bad configuration: the database URL 'odin.db' has no scheme: write postgresql://user:password@host/db, "
            "mysql://user:password@host/db, or sqlite:///odin.db for a SQLite file"
        )
        assert not (HERE / "odin.db").exists()
    done = odin("server", "--grpc-port", "0", "--database-url", "mongodb://h/db")
    assert one_line_error(done, 1) == (
        "bad configuration: unsupported database URL scheme 'mongodb': use postgresql://, mysql:// or sqlite://"
    )


def test_a_worker_on_a_namespace_the_server_lacks(dev):
    done = odin("worker", "-A", "greeter:app", "--address", dev.grpc, "--namespace", "nope", timeout=90)
    assert one_line_error(done, 3) == (
        f"the namespace 'nope' does not exist on the server at {dev.grpc}: "
        "create it (odin namespace create nope) or pass --namespace / ODIN_NAMESPACE"
    )
    # odin beat and ODIN_NAMESPACE say the same, and no server at all is one line too.
    done = odin("beat", "-A", "greeter:app", "--address", dev.grpc, "--namespace", "nope", "--once", timeout=90)
    assert one_line_error(done, 3).startswith("the namespace 'nope' does not exist")
    done = odin("worker", "-A", "greeter:app", env={"ODIN_ADDRESS": dev.grpc, "ODIN_NAMESPACE": "nope"}, timeout=90)
    assert "the namespace 'nope' does not exist" in one_line_error(done, 3)
    port = _free_port()
    done = odin("worker", "-A", "greeter:app", "--address", f"127.0.0.1:{port}", timeout=90)
    assert one_line_error(done, 4) == (
        f"cannot reach the server at 127.0.0.1:{port} (--address / ODIN_ADDRESS): nothing listens there (connection refused)"
    )


def test_celery_worker_and_beat_with_a_bad_setting():
    import subprocess
    import sys

    from cli_support import ENV

    for role, env, message in (
        ("worker", {"ODIN_DATABASE_URL": "odin.db", "ODIN_REDIS_URL": "redis://127.0.0.1:1/0"},
         "the database URL 'odin.db' has no scheme: write postgresql://user:password@host/db, "
         "mysql://user:password@host/db, or sqlite:///odin.db for a SQLite file"),
        ("beat", {}, "Odin's system workers need Redis: set ODIN_REDIS_URL (or REDIS_URL)"),
    ):
        done = subprocess.run([sys.executable, "-m", "celery", "-A", "odin", role], capture_output=True, text=True,
                              timeout=60, env={**{k: v for k, v in ENV.items() if k != "REDIS_URL"}, **env}, cwd=HERE)
        assert done.returncode == 1 and done.stderr.strip() == f"odin: bad configuration: {message}", done.stderr
