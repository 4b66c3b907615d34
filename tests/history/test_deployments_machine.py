"""Worker deployments as data (odin/history/deployments.py): versions created by polls, current
and ramping versions, drainage when a version stops receiving new runs, what may be deleted, and
the ramp's share of workflow ids."""

from __future__ import annotations

import pytest

from odin.errors import FailedPrecondition, InvalidArgument, NotFound
from odin.history import deployments as dep


def deployment(*builds: str) -> dep.Deployment:
    d = dep.Deployment("shop", 1.0)
    for i, b in enumerate(builds):
        assert dep.register_poller(d, b, "orders", 1, 10.0 + i)
    return d


def test_polls_create_versions_and_record_each_queue_once():
    d = deployment("v1")
    assert not dep.register_poller(d, "v1", "orders", 1, 20.0)
    assert dep.register_poller(d, "v1", "orders", 2, 20.0)
    assert d.versions["v1"].task_queues == [["orders", 1], ["orders", 2]]
    assert d.versions["v1"].create_time == 10.0
    assert dep.Deployment.from_json(d.to_json()) == d


def test_current_and_ramping_versions_and_drainage():
    d = deployment("v1", "v2", "v3")
    assert dep.set_current(d, "v1", "ops", 100.0) == dep.UNVERSIONED
    assert (d.current, d.versions["v1"].current_since, d.last_modifier) == ("v1", 100.0, "ops")
    assert dep.set_ramping(d, "v2", 30.0, "ops", 110.0) == (None, 0.0)
    assert (d.ramping, d.ramp, d.versions["v2"].ramp, d.versions["v2"].ramping_since) == ("v2", 30.0, 30.0, 110.0)
    # Promoting the ramping version ends the ramp; the old current one drains.
    assert dep.set_current(d, "v2", "ops", 120.0) == "v1"
    assert (d.current, d.ramping, d.ramp) == ("v2", None, 0.0)
    assert (d.versions["v1"].drainage, d.versions["v1"].last_deactivation) == (dep.DRAINING, 120.0)
    assert d.versions["v2"].drainage == dep.DRAINAGE_UNSPECIFIED
    # Ramping to another version drains the one ramped before.
    dep.set_ramping(d, "v3", 10.0, "ops", 130.0)
    dep.set_ramping(d, "v1", 5.0, "ops", 140.0)
    assert d.versions["v3"].drainage == dep.DRAINING
    assert d.versions["v1"].drainage == dep.DRAINAGE_UNSPECIFIED  # active again
    assert dep.set_ramping(d, None, 0.0, "ops", 150.0) == ("v1", 5.0)
    assert d.ramping is None and d.versions["v1"].drainage == dep.DRAINING


def test_bad_routing_changes_are_refused_and_change_nothing():
    d = deployment("v1", "v2")
    dep.set_current(d, "v1", "ops", 100.0)
    before = d.to_json()
    with pytest.raises(NotFound, match="build ID 'v9' not found in Worker Deployment 'shop'"):
        dep.set_current(d, "v9", "ops", 200.0)
    for bad in (-1.0, 100.5, float("nan")):
        with pytest.raises(InvalidArgument, match=r"Percentage must be between 0 and 100 \(inclusive\)"):
            dep.set_ramping(d, "v2", bad, "ops", 200.0)
    with pytest.raises(FailedPrecondition, match="requested ramping version shop.v1 is already current"):
        dep.set_ramping(d, "v1", 10.0, "ops", 200.0)
    with pytest.raises(FailedPrecondition, match="'shop:v1' cannot be deleted since it is current or ramping"):
        dep.delete_version(d, "v1", skip_drainage=True)
    assert d.to_json() == before


def test_a_draining_version_is_deleted_only_when_drained_or_skipping_drainage():
    d = deployment("v1", "v2")
    dep.set_current(d, "v1", "ops", 100.0)
    dep.set_current(d, "v2", "ops", 110.0)
    with pytest.raises(FailedPrecondition, match="'shop:v1' cannot be deleted since it is draining"):
        dep.delete_version(d, "v1", skip_drainage=False)
    dep.delete_version(d, "v1", skip_drainage=True)
    assert list(d.versions) == ["v2"]


def test_version_strings_and_metadata():
    assert dep.build_id_of("shop", "", "shop.v1.2") == "v1.2"
    assert dep.build_id_of("shop", "", "__unversioned__") == dep.UNVERSIONED
    assert dep.build_id_of("shop", "b", "") == "b"
    with pytest.raises(InvalidArgument):
        dep.build_id_of("shop", "", "other.v1")
    d = deployment("v1")
    assert dep.update_metadata(d, "v1", {"a": "01", "b": "02"}, []) == {"a": "01", "b": "02"}
    assert dep.update_metadata(d, "v1", {}, ["a", "zz"]) == {"b": "02"}


def test_a_ramp_sends_its_share_of_workflow_ids_the_same_way_every_time():
    d = deployment("v1", "v2")
    dep.set_current(d, "v1", "ops", 100.0)
    dep.set_ramping(d, "v2", 30.0, "ops", 110.0)
    ids = [f"order-{i}" for i in range(200)]
    to_v2 = [i for i in ids if dep.target_build(d, i) == "v2"]
    assert 45 <= len(to_v2) <= 75  # about 30 % of 200
    assert to_v2 == [i for i in ids if dep.target_build(d, i) == "v2"]
    dep.set_ramping(d, "v2", 0.0, "ops", 120.0)
    assert {dep.target_build(d, i) for i in ids} == {"v1"}
    dep.set_ramping(d, "v2", 100.0, "ops", 130.0)
    assert {dep.target_build(d, i) for i in ids} == {"v2"}


def test_a_draining_version_with_no_pinned_runs_left_is_drained_until_it_is_active_again():
    d = deployment("v1", "v2")
    dep.set_current(d, "v1", "ops", 100.0)
    dep.set_current(d, "v2", "ops", 110.0)
    dep.record_drainage(d, "v1", 3, 120.0)  # pinned runs still open
    assert (d.versions["v1"].drainage, d.versions["v1"].drainage_checked) == (dep.DRAINING, 120.0)
    dep.record_drainage(d, "v1", 0, 130.0)
    assert (d.versions["v1"].drainage, d.versions["v1"].drainage_changed) == (dep.DRAINED, 130.0)
    dep.record_drainage(d, "v2", 0, 130.0)  # the current version never drains
    assert d.versions["v2"].drainage == dep.DRAINAGE_UNSPECIFIED
    dep.set_ramping(d, "v1", 10.0, "ops", 140.0)
    assert d.versions["v1"].drainage == dep.DRAINAGE_UNSPECIFIED
