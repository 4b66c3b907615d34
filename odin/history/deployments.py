"""Worker deployments as data: a deployment's versions, their task queues and metadata, and its
routing (current and ramping version), with the changes operators and pollers make to them.

Pure: times come in as arguments, nothing here reads a store. The frontend loads a deployment's
row, applies one of these changes and writes it back by compare-and-swap
(docs/architecture.md#worker-deployments).

A version is named by its build id within its deployment; ``""`` stands for the unversioned
workers (Temporal's ``__unversioned__``), which are always there and are never a stored version.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.deployment.v1 import WorkerDeploymentVersion
from temporalio.api.enums.v1 import EventType as E
from temporalio.api.enums.v1 import VersioningBehavior
from temporalio.api.errordetails.v1 import NotFoundFailure
from temporalio.api.history.v1 import WorkflowExecutionOptionsUpdatedEventAttributes
from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionVersioningInfo

from odin.errors import FailedPrecondition, InvalidArgument, NotFound
from odin.history.machine import Transition
from odin.history.state import AUTO_UPGRADE as AUTO_UPGRADE_BEHAVIOR
from odin.history.state import PINNED as PINNED_BEHAVIOR
from odin.history.state import MutableState, pack, unpack

UNVERSIONED = ""
UNVERSIONED_NAME = "__unversioned__"

# temporal.api.enums.v1.VersionDrainageStatus
DRAINAGE_UNSPECIFIED = 0
DRAINING = 1
DRAINED = 2

# Temporal keeps at most this many versions per deployment.
MAX_VERSIONS = 100


@dataclass
class Version:
    """One build of a deployment's workers, created by its first poll."""

    build_id: str
    create_time: float
    routing_changed: float | None = None
    current_since: float | None = None
    ramping_since: float | None = None
    ramp: float = 0.0
    first_activation: float | None = None
    last_deactivation: float | None = None
    drainage: int = DRAINAGE_UNSPECIFIED
    drainage_changed: float | None = None
    drainage_checked: float | None = None
    # key -> serialized temporal.api.common.v1.Payload, hex
    metadata: dict[str, str] = field(default_factory=dict)
    # (task queue name, temporal.api.enums.v1.TaskQueueType) polled by this version's workers
    task_queues: list[list[Any]] = field(default_factory=list)


@dataclass
class Deployment:
    """A deployment: its versions and where new work goes (``current``: a build id or
    UNVERSIONED; ``ramping``: None for no ramp, else a build id or UNVERSIONED)."""

    name: str
    create_time: float
    versions: dict[str, Version] = field(default_factory=dict)
    current: str = UNVERSIONED
    ramping: str | None = None
    ramp: float = 0.0
    current_changed: float | None = None
    ramping_changed: float | None = None
    ramp_changed: float | None = None
    last_modifier: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        data = json.loads(text)
        versions = {k: Version(**v) for k, v in data.pop("versions").items()}
        return cls(versions=versions, **data)

    def version_name(self, build_id: str) -> str:
        """Temporal's string form of a version: ``<deployment>.<build id>``, or ``__unversioned__``."""
        return UNVERSIONED_NAME if build_id == UNVERSIONED else f"{self.name}.{build_id}"

    def version(self, build_id: str) -> Version:
        found = self.versions.get(build_id)
        if found is None:
            raise NotFound(f"build ID '{build_id}' not found in Worker Deployment '{self.name}'", NotFoundFailure())
        return found


def build_id_of(deployment_name: str, build_id: str, version: str) -> str:
    """The build id a request names: its ``build_id``, else its deprecated ``version`` string
    (``<deployment>.<build id>`` or ``__unversioned__``)."""
    if build_id or not version:
        return build_id
    if version == UNVERSIONED_NAME:
        return UNVERSIONED
    prefix = f"{deployment_name}."
    if deployment_name and not version.startswith(prefix):
        raise InvalidArgument(f"version {version} does not belong to deployment {deployment_name}")
    if not deployment_name and "." not in version:
        raise InvalidArgument(f"invalid version string {version!r}: expected <deployment_name>.<build_id>")
    return version[len(prefix) :] if deployment_name else version.split(".", 1)[1]


def register_poller(d: Deployment, build_id: str, queue: str, queue_type: int, now: float) -> bool:
    """A versioned worker polled ``queue``: create its version and record the queue. Whether
    anything changed."""
    v = d.versions.get(build_id)
    created = v is None
    if v is None:
        if len(d.versions) >= MAX_VERSIONS:
            raise FailedPrecondition(
                f"Worker Deployment {d.name} has reached the maximum of {MAX_VERSIONS} versions; delete an old one"
            )
        v = d.versions[build_id] = Version(build_id=build_id, create_time=now)
    if [queue, queue_type] in v.task_queues:
        return created
    v.task_queues.append([queue, queue_type])
    return True


def _deactivate(d: Deployment, build_id: str | None, now: float) -> None:
    """A version stopped receiving new runs: it is draining until no pinned run is left on it."""
    if not build_id or build_id not in d.versions or build_id in (d.current, d.ramping):
        return
    v = d.versions[build_id]
    v.current_since = v.ramping_since = None
    v.ramp = 0.0
    v.routing_changed = v.last_deactivation = now
    v.drainage, v.drainage_changed, v.drainage_checked = DRAINING, now, now


def _activate(v: Version, now: float) -> None:
    v.routing_changed = now
    if v.first_activation is None:
        v.first_activation = now
    v.drainage, v.drainage_changed, v.drainage_checked = DRAINAGE_UNSPECIFIED, None, None


def set_current(d: Deployment, build_id: str, identity: str, now: float) -> str:
    """Make ``build_id`` (or the unversioned workers) the current version; the previous one."""
    previous = d.current
    if build_id != UNVERSIONED:
        d.version(build_id)
    if build_id == previous:
        return previous
    d.current, d.current_changed, d.last_modifier = build_id, now, identity
    if d.ramping == build_id:  # promoting the ramping version ends the ramp
        d.ramping, d.ramp, d.ramping_changed, d.ramp_changed = None, 0.0, now, now
    if build_id != UNVERSIONED:
        v = d.versions[build_id]
        _activate(v, now)
        v.current_since, v.ramping_since, v.ramp = now, None, 0.0
    _deactivate(d, previous, now)
    return previous


def set_ramping(d: Deployment, build_id: str | None, percentage: float, identity: str, now: float) -> tuple[str | None, float]:
    """Ramp ``percentage`` % of new work to ``build_id`` (None: end the ramp); the previous
    ramping version and percentage."""
    if not 0.0 <= percentage <= 100.0:  # NaN too
        raise InvalidArgument("Percentage must be between 0 and 100 (inclusive)")
    previous, previous_ramp = d.ramping, d.ramp
    if build_id is None:
        d.ramping, d.ramp = None, 0.0
        if previous is not None:
            d.ramping_changed = d.ramp_changed = now
            d.last_modifier = identity
            _deactivate(d, previous, now)
        return previous, previous_ramp
    if build_id != UNVERSIONED:
        d.version(build_id)
    if build_id == d.current:
        raise FailedPrecondition(f"requested ramping version {d.version_name(build_id)} is already current")
    d.last_modifier = identity
    if build_id != previous:
        d.ramping, d.ramping_changed = build_id, now
        if build_id != UNVERSIONED:
            v = d.versions[build_id]
            _activate(v, now)
            v.ramping_since = now
        _deactivate(d, previous, now)
    if percentage != previous_ramp or build_id != previous:
        d.ramp, d.ramp_changed = percentage, now
        if build_id != UNVERSIONED:
            d.versions[build_id].ramp = percentage
            d.versions[build_id].routing_changed = now
    return previous, previous_ramp


def delete_version(d: Deployment, build_id: str, skip_drainage: bool) -> None:
    """Forget a version that receives no new work (and, unless ``skip_drainage``, is drained)."""
    v = d.version(build_id)
    if build_id in (d.current, d.ramping):
        raise FailedPrecondition(f"version '{d.name}:{build_id}' cannot be deleted since it is current or ramping")
    if v.drainage == DRAINING and not skip_drainage:
        raise FailedPrecondition(f"version '{d.name}:{build_id}' cannot be deleted since it is draining")
    del d.versions[build_id]


def update_metadata(d: Deployment, build_id: str, upsert: dict[str, str], remove: list[str]) -> dict[str, str]:
    """Set and remove metadata entries of a version; its metadata after."""
    v = d.version(build_id)
    v.metadata.update(upsert)
    for key in remove:
        v.metadata.pop(key, None)
    return dict(v.metadata)


def record_drainage(d: Deployment, build_id: str, pinned_runs: int, now: float) -> None:
    """A drainage check of a draining version found ``pinned_runs`` open runs pinned to it: with
    none left it is drained (and stays so until it is current or ramping again)."""
    v = d.versions.get(build_id)
    if v is None or v.drainage != DRAINING or build_id in (d.current, d.ramping):
        return
    v.drainage_checked = now
    if pinned_runs == 0:
        v.drainage, v.drainage_changed = DRAINED, now


def ramp_bucket(workflow_id: str) -> float:
    """Where a workflow id falls in [0, 100): a ramp of p % sends the ids below p to the ramping
    version, the same way on every call and in every process."""
    h = 2166136261
    for byte in workflow_id.encode():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return (h % 10000) / 100.0


def target_build(d: Deployment, workflow_id: str) -> str:
    """The version a new or auto-upgrade run's task goes to: the ramping one for the ramp's share
    of workflow ids, else the current one."""
    if d.ramping is not None and d.ramp > 0.0 and ramp_bucket(workflow_id) < d.ramp:
        return d.ramping
    return d.current


# -- a run's versioning override (UpdateWorkflowExecutionOptions) -------------------------------

BEHAVIOR_NAMES = {0: "Unspecified", 1: "Pinned", 2: "AutoUpgrade"}


def set_versioning_override(t: Transition, override: VersioningOverride | None, identity: str) -> VersioningOverride | None:
    """Pin the run to a version or let it auto-upgrade, whatever its workflow task says (None:
    remove the override); recorded as a WorkflowExecutionOptionsUpdated event. The override in
    effect after; a pinned override without a version pins the run where it is."""
    s = t.state
    if not s.running:
        raise NotFound("workflow execution already completed", NotFoundFailure())
    attrs = WorkflowExecutionOptionsUpdatedEventAttributes(identity=identity)
    if override is None:
        s.override_behavior, s.override_deployment, s.override_build = 0, "", ""
        attrs.unset_versioning_override = True
        t.append(E.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED, attrs, bufferable=True)
        version_search_attributes(s)
        return None
    if override.auto_upgrade or override.behavior == AUTO_UPGRADE_BEHAVIOR:
        s.override_behavior, s.override_deployment, s.override_build = AUTO_UPGRADE_BEHAVIOR, "", ""
        result = VersioningOverride(auto_upgrade=True)
    else:
        name, build_id = pinned_override_version(override)
        if not build_id:
            if not s.deployment_build or s.versioning_behavior != PINNED_BEHAVIOR:
                raise FailedPrecondition(
                    f"must specify a specific pinned override version because workflow with id {s.workflow_id} has "
                    f"behavior {BEHAVIOR_NAMES.get(s.versioning_behavior, 'Unspecified')} and is not yet pinned to any version"
                )
            name, build_id = s.deployment, s.deployment_build
        s.override_behavior, s.override_deployment, s.override_build = PINNED_BEHAVIOR, name, build_id
        result = VersioningOverride(
            pinned=VersioningOverride.PinnedOverride(
                behavior=VersioningOverride.PinnedOverrideBehavior.PINNED_OVERRIDE_BEHAVIOR_PINNED,
                version=WorkerDeploymentVersion(deployment_name=name, build_id=build_id),
            )
        )
    attrs.versioning_override.CopyFrom(result)
    t.append(E.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED, attrs, bufferable=True)
    version_search_attributes(s)
    return result


def pinned_override_version(override: VersioningOverride) -> tuple[str, str]:
    """(deployment, build id) a pinned override names ("" build id: none), from its current or its
    deprecated fields."""
    if override.pinned.version.build_id:
        return override.pinned.version.deployment_name, override.pinned.version.build_id
    if override.pinned_version and "." in override.pinned_version:
        name, build_id = override.pinned_version.split(".", 1)
        return name, build_id
    return "", ""


def current_override(s: MutableState) -> VersioningOverride | None:
    """The run's override as Temporal reports it."""
    if s.override_behavior == AUTO_UPGRADE_BEHAVIOR:
        return VersioningOverride(auto_upgrade=True)
    if s.override_behavior == PINNED_BEHAVIOR:
        return VersioningOverride(
            pinned=VersioningOverride.PinnedOverride(
                behavior=VersioningOverride.PinnedOverrideBehavior.PINNED_OVERRIDE_BEHAVIOR_PINNED,
                version=WorkerDeploymentVersion(deployment_name=s.override_deployment, build_id=s.override_build),
            )
        )
    return None


def versioning_info(s: MutableState) -> WorkflowExecutionVersioningInfo | None:
    """DescribeWorkflowExecution's versioning info of a run: the version it last ran on, its
    behaviour and any override (None for an unversioned run without one)."""
    if not s.deployment_build and not s.override_behavior:
        return None
    info = WorkflowExecutionVersioningInfo(behavior=VersioningBehavior.ValueType(s.versioning_behavior))
    if s.deployment_build:
        info.deployment_version.CopyFrom(WorkerDeploymentVersion(deployment_name=s.deployment, build_id=s.deployment_build))
        info.version = f"{s.deployment}.{s.deployment_build}"
    override = current_override(s)
    if override is not None:
        info.versioning_override.CopyFrom(override)
    return info


_BEHAVIOR_NAMES = {1: "Pinned", 2: "AutoUpgrade"}
VERSION_ATTRIBUTES = ("TemporalWorkerDeployment", "TemporalWorkerDeploymentVersion", "TemporalWorkflowVersioningBehavior")


def version_search_attributes(s: MutableState) -> None:
    """Keep the run's deployment search attributes in step with its effective version and
    behaviour (an override's, else its last workflow task's), as Temporal's are; a change rewrites
    its visibility row, which is what counts a version's pinned runs."""
    attributes = unpack(SearchAttributes, s.search_attributes) or SearchAttributes()
    if s.override_behavior == PINNED_BEHAVIOR:
        deployment, build_id = s.override_deployment, s.override_build
    else:
        deployment, build_id = s.deployment, s.deployment_build
    behavior = s.override_behavior or s.versioning_behavior
    values = (deployment, f"{deployment}:{build_id}", _BEHAVIOR_NAMES.get(behavior, ""))
    for name, value in zip(VERSION_ATTRIBUTES, values, strict=True):
        if value and build_id:
            attributes.indexed_fields[name].CopyFrom(
                Payload(metadata={"encoding": b"json/plain", "type": b"Keyword"}, data=json.dumps(value).encode())
            )
        elif name in attributes.indexed_fields:
            del attributes.indexed_fields[name]
    if s.search_attributes is not None or attributes.indexed_fields:
        s.search_attributes = pack(attributes)
