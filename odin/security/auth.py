"""Who is calling, and what they may do (docs/architecture.md#gate).

Both doors carry a bearer token: the ``authorization`` metadata on gRPC, the ``Authorization``
header on REST. A token is a JWT (HS256 or RS256) or a static API key. Either maps to a
``Principal``: per-namespace roles plus, possibly, cluster administration.

Roles and what they grant:

- ``reader``: read workflows, histories, visibility, task queues, the namespace;
- ``writer``: reader, plus start, signal, update, cancel and terminate workflows;
- ``worker``: reader, plus poll and complete tasks (what an SDK worker calls);
- ``admin``: everything in the namespace, including its settings and search attributes;
- cluster admin (``odin-system:admin``): everything, including creating namespaces.

``OPERATIONS`` is the one table of what each call needs; a call missing from it is refused.
"""

from __future__ import annotations

import enum
import fnmatch
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jwt

from odin.errors import PermissionDenied, Unauthenticated
from odin.operations import Operation as Op

SYSTEM_NAMESPACE = "odin-system"
ROLES = ("reader", "writer", "worker", "admin")


class Level(enum.Enum):
    PUBLIC = "public"  # anyone, even without a token
    AUTHENTICATED = "authenticated"  # any valid token
    READ = "read"
    WRITE = "write"
    WORK = "work"
    ADMIN = "admin"  # the namespace's administration
    CLUSTER = "cluster"  # cluster administration


_GRANTS: dict[str, frozenset[Level]] = {
    "reader": frozenset({Level.READ}),
    "writer": frozenset({Level.READ, Level.WRITE}),
    "worker": frozenset({Level.READ, Level.WORK}),
    "admin": frozenset({Level.READ, Level.WRITE, Level.WORK, Level.ADMIN}),
}

_READ = (
    Op.DescribeNamespace, Op.GetWorkflowExecutionHistory, Op.GetWorkflowExecutionHistoryReverse, Op.DescribeWorkflowExecution,
    Op.QueryWorkflow, Op.ListWorkflowExecutions, Op.ScanWorkflowExecutions, Op.CountWorkflowExecutions,
    Op.ListOpenWorkflowExecutions, Op.ListClosedWorkflowExecutions, Op.ListSearchAttributes, Op.DescribeTaskQueue,
    Op.ListTaskQueuePartitions, Op.PollWorkflowExecutionUpdate, Op.DescribeSchedule, Op.ListSchedules,
    Op.ListScheduleMatchingTimes, Op.ListWorkers, Op.CountWorkers, Op.DescribeWorker, Op.DescribeBatchOperation,
    Op.ListBatchOperations, Op.DescribeActivityExecution, Op.PollActivityExecution, Op.ListActivityExecutions,
    Op.CountActivityExecutions,
    Op.DescribeWorkerDeployment, Op.ListWorkerDeployments, Op.DescribeWorkerDeploymentVersion,
)
_WRITE = (
    Op.StartWorkflowExecution, Op.SignalWithStartWorkflowExecution, Op.SignalWorkflowExecution,
    Op.RequestCancelWorkflowExecution, Op.TerminateWorkflowExecution, Op.UpdateWorkflowExecution, Op.ExecuteMultiOperation,
    Op.CreateSchedule, Op.UpdateSchedule, Op.PatchSchedule, Op.DeleteSchedule,
    Op.ResetWorkflowExecution,
    Op.PauseActivity, Op.UnpauseActivity, Op.ResetActivity, Op.UpdateActivityOptions, Op.PauseActivityExecution,
    Op.UnpauseActivityExecution, Op.ResetActivityExecution, Op.UpdateActivityExecutionOptions,
    # A batch deletion also needs admin rights (checked by the call, as DeleteWorkflowExecution's).
    Op.StartBatchOperation, Op.StopBatchOperation,
    Op.StartActivityExecution, Op.RequestCancelActivityExecution, Op.TerminateActivityExecution,
    # Routing between worker deployment versions (writers, as Temporal's default authorizer has it).
    Op.SetWorkerDeploymentCurrentVersion, Op.SetWorkerDeploymentRampingVersion, Op.DeleteWorkerDeploymentVersion,
    Op.DeleteWorkerDeployment, Op.UpdateWorkerDeploymentVersionMetadata, Op.UpdateWorkflowExecutionOptions,
)
_WORK = (
    Op.PollWorkflowTaskQueue, Op.RespondWorkflowTaskCompleted, Op.RespondWorkflowTaskFailed, Op.PollActivityTaskQueue,
    Op.RecordActivityTaskHeartbeat, Op.RespondActivityTaskCompleted, Op.RespondActivityTaskFailed,
    Op.RespondActivityTaskCanceled, Op.RespondQueryTaskCompleted, Op.ShutdownWorker, Op.ResetStickyTaskQueue,
    Op.RecordWorkerHeartbeat,
)
# Completing an activity by its id is what async-completion clients do: workers or writers.
_WORK_OR_WRITE = (
    Op.RecordActivityTaskHeartbeatById, Op.RespondActivityTaskCompletedById, Op.RespondActivityTaskFailedById,
    Op.RespondActivityTaskCanceledById,
)
_ADMIN = (
    Op.UpdateNamespace, Op.DeleteNamespace, Op.AddSearchAttributes, Op.RemoveSearchAttributes, Op.DeleteWorkflowExecution,
    Op.DeleteActivityExecution,
)

OPERATIONS: dict[Op, frozenset[Level]] = {
    Op.GetSystemInfo: frozenset({Level.PUBLIC}),
    Op.GetClusterInfo: frozenset({Level.AUTHENTICATED}),
    Op.ListNamespaces: frozenset({Level.AUTHENTICATED}),
    # Names no namespace: it lists only the built-in search attributes every namespace has.
    Op.GetSearchAttributes: frozenset({Level.AUTHENTICATED}),
    Op.RegisterNamespace: frozenset({Level.CLUSTER}),
    **{op: frozenset({Level.READ}) for op in _READ},
    **{op: frozenset({Level.WRITE}) for op in _WRITE},
    **{op: frozenset({Level.WORK}) for op in _WORK},
    **{op: frozenset({Level.WORK, Level.WRITE}) for op in _WORK_OR_WRITE},
    **{op: frozenset({Level.ADMIN}) for op in _ADMIN},
}

# Calls that change something: each leaves an audit line. Worker task traffic is recorded in
# the histories it writes (with the worker's identity) instead.
MUTATING: frozenset[Op] = frozenset({Op.RegisterNamespace, *_WRITE, *_ADMIN, *_WORK_OR_WRITE}) - {Op.RecordActivityTaskHeartbeatById}


@dataclass(frozen=True)
class Principal:
    subject: str
    # namespace (or "*" for every namespace) -> roles held there
    roles: Mapping[str, frozenset[str]] = field(default_factory=dict)
    cluster_admin: bool = False
    # If set, the worker identities this principal may poll and report as (fnmatch pattern).
    worker_identity: str | None = None

    def levels(self, namespace: str | None) -> frozenset[Level]:
        held: set[str] = set(self.roles.get("*", ()))
        if namespace:
            held |= self.roles.get(namespace, set())
        return frozenset().union(*(_GRANTS[r] for r in held if r in _GRANTS))

    def can_access(self, namespace: str) -> bool:
        return self.cluster_admin or bool(self.levels(namespace))


# What every call gets when authentication is off (``odin dev`` by default).
UNRESTRICTED = Principal("anonymous", {"*": frozenset(ROLES)}, cluster_admin=True)
# A caller without credentials, when authentication is on (may make public calls only).
ANONYMOUS = Principal("anonymous")


def parse_permissions(permissions) -> tuple[dict[str, frozenset[str]], bool]:
    """``["default:writer", "*:reader", "odin-system:admin"]`` -> (roles by namespace, cluster admin)."""
    if not isinstance(permissions, (list, tuple)):
        raise ValueError("permissions must be a list of 'namespace:role' strings")
    roles: dict[str, set[str]] = {}
    cluster_admin = False
    for item in permissions:
        namespace, sep, role = str(item).rpartition(":")
        if not sep or not namespace or role not in ROLES:
            raise ValueError(f"bad permission {item!r}: expected 'namespace:role' with role one of {', '.join(ROLES)}")
        if namespace == SYSTEM_NAMESPACE:
            cluster_admin = cluster_admin or role == "admin"
            continue
        roles.setdefault(namespace, set()).add(role)
    return {ns: frozenset(r) for ns, r in roles.items()}, cluster_admin


def authorize(principal: Principal, operation: Op, namespace: str | None, identity: str | None = None) -> None:
    """Raise ``PermissionDenied`` unless the principal may make this call."""
    needed = OPERATIONS.get(operation)
    if needed is None:
        raise PermissionDenied(f"{operation} is not open to callers of this server.")
    if Level.PUBLIC in needed or Level.AUTHENTICATED in needed or principal.cluster_admin:
        pass
    elif Level.CLUSTER in needed:
        raise PermissionDenied(f"{principal.subject} may not call {operation}: it needs cluster administration.")
    elif not (principal.levels(namespace) & needed):
        wanted = " or ".join(sorted(level.value for level in needed))
        raise PermissionDenied(
            f"{principal.subject} may not call {operation} in namespace {namespace!r}: it needs {wanted} access."
        )
    if identity is not None and Level.WORK in needed and principal.worker_identity is not None:
        if not fnmatch.fnmatchcase(identity, principal.worker_identity):
            raise PermissionDenied(
                f"{principal.subject} may not act as worker {identity!r} (allowed: {principal.worker_identity!r})."
            )


@dataclass
class AuthConfig:
    enabled: bool = False
    hs256_secret: str | None = None
    rs256_public_key: str | None = None
    audience: str | None = None
    issuer: str | None = None
    # sha256 hex of an API key -> its principal
    api_keys: dict[str, Principal] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthConfig:
        env = os.environ if env is None else env
        enabled = env.get("ODIN_AUTH", "off").lower() in ("1", "on", "true", "yes")
        public_key = env.get("ODIN_JWT_RS256_PUBLIC_KEY")
        if not public_key and env.get("ODIN_JWT_RS256_PUBLIC_KEY_FILE"):
            public_key = Path(env["ODIN_JWT_RS256_PUBLIC_KEY_FILE"]).read_text()
        keys_doc = env.get("ODIN_API_KEYS")
        if not keys_doc and env.get("ODIN_API_KEYS_FILE"):
            keys_doc = Path(env["ODIN_API_KEYS_FILE"]).read_text()
        config = cls(
            enabled=enabled,
            hs256_secret=env.get("ODIN_JWT_HS256_SECRET") or None,
            rs256_public_key=public_key or None,
            audience=env.get("ODIN_JWT_AUDIENCE") or None,
            issuer=env.get("ODIN_JWT_ISSUER") or None,
            api_keys=parse_api_keys(json.loads(keys_doc)) if keys_doc else {},
        )
        if enabled and not (config.hs256_secret or config.rs256_public_key or config.api_keys):
            raise ValueError("ODIN_AUTH is on but no JWT key and no API keys are configured")
        return config


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_api_keys(doc) -> dict[str, Principal]:
    """``{"keys": [{"sha256": "<hex>" | "key": "<plain>", "subject": "...", "permissions": [...],
    "worker_identity": "pattern"?}]}`` -> principals by key hash (store hashes, not keys)."""
    out: dict[str, Principal] = {}
    for entry in doc.get("keys", []):
        digest = entry.get("sha256") or (hash_api_key(entry["key"]) if "key" in entry else None)
        if not digest or not entry.get("subject"):
            raise ValueError("each API key needs 'sha256' (or 'key') and 'subject'")
        roles, cluster_admin = parse_permissions(entry.get("permissions", []))
        out[digest.lower()] = Principal(entry["subject"], roles, cluster_admin, entry.get("worker_identity"))
    return out


class Authenticator:
    def __init__(self, config: AuthConfig):
        self.config = config

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an ``Authorization`` value; ``Unauthenticated`` if there is none."""
        if not self.config.enabled:
            return UNRESTRICTED
        if not authorization:
            raise Unauthenticated("Authentication required: send 'authorization: Bearer <token>'.")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Authorization must be 'Bearer <token>'.")
        if token.count(".") == 2:
            return self._from_jwt(token)
        principal = self.config.api_keys.get(hash_api_key(token))
        if principal is None:
            raise Unauthenticated("Unknown API key.")
        return principal

    def _from_jwt(self, token: str) -> Principal:
        c = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("Malformed token.") from None
        alg = header.get("alg")
        key = {"HS256": c.hs256_secret, "RS256": c.rs256_public_key}.get(alg)
        if key is None:
            raise Unauthenticated(f"Tokens signed with {alg!r} are not accepted here.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=c.audience,
                issuer=c.issuer,
                options={"require": ["exp", "sub"], "verify_aud": c.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("Token has expired.") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"Invalid token: {exc}") from None
        try:
            roles, cluster_admin = parse_permissions(claims.get("permissions", []))
        except ValueError as exc:
            raise Unauthenticated(f"Invalid token: {exc}") from None
        return Principal(str(claims["sub"]), roles, cluster_admin, claims.get("odin_worker_identity"))
