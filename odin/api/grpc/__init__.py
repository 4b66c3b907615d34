"""gRPC door: Temporal's WorkflowService on port 7233."""

from odin.api.grpc.server import build_grpc_server

__all__ = ["build_grpc_server"]
