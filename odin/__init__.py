"""Odin: durable workflows for Python teams, speaking Temporal's WorkflowService API."""

__version__ = "0.1.0"
