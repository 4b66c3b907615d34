"""Odin: durable workflows for Python teams, speaking Temporal's WorkflowService API."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``celery -A odin worker|beat`` looks up ``odin.celery``; the app is built on first use.
    if name == "celery":
        from odin.beat.celery_app import default_app

        return default_app()
    raise AttributeError(f"module 'odin' has no attribute {name!r}")
