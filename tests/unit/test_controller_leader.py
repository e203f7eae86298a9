"""The pure rules of leader election (controller/leader.py): who may take, renew or must wait for the Lease, given
what it says and when this replica first saw it; how long a leader may act; what it writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from videojob.controller.leader import (
    Decision,
    LeaseRecord,
    Observation,
    Timings,
    decide,
    leading_until,
    lease_body,
    observe,
    released_body,
)
from videojob.controller.settings import Settings

TIMINGS = Timings(lease_duration=10, renew_deadline=7, retry_period=1)
ME, OTHER = "operator-a", "operator-b"
NOW = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)


def record(
    holder: str | None,
    renew: str = "t1",
    duration: float | None = 10,
    transitions: int = 0,
    acquire: str | None = "t0",
    version: str | None = "42",
) -> LeaseRecord:
    return LeaseRecord(holder, duration, acquire, renew, transitions, version)


def seen_at(rec: LeaseRecord | None, t: float) -> Observation:
    return observe(None, rec, t)


@pytest.mark.parametrize(
    ("rec", "first_seen", "now", "expected"),
    [
        pytest.param(None, 0, 0, Decision.CREATE, id="no Lease yet: create it"),
        pytest.param(record(None), 0, 0, Decision.ACQUIRE, id="a released Lease is taken at once"),
        pytest.param(record(ME), 0, 0, Decision.RENEW, id="our own Lease is renewed"),
        pytest.param(
            record(ME),
            0,
            60,
            Decision.RENEW,
            id="a Lease naming us is ours even when old: a restarted container of the same pod takes it back",
        ),
        pytest.param(record(OTHER), 0, 0, Decision.WAIT, id="another holder's fresh Lease: wait"),
        pytest.param(record(OTHER), 0, 9.9, Decision.WAIT, id="unchanged for less than its duration: wait"),
        pytest.param(record(OTHER), 0, 10, Decision.ACQUIRE, id="unchanged for its whole duration: take it over"),
        pytest.param(
            record(OTHER, duration=30),
            0,
            20,
            Decision.WAIT,
            id="the holder's own leaseDurationSeconds counts, not ours",
        ),
        pytest.param(
            record(OTHER, duration=None), 0, 10, Decision.ACQUIRE, id="a Lease without a duration expires after ours"
        ),
        pytest.param(
            record(OTHER),
            50,
            55,
            Decision.WAIT,
            id="expiry counts from when this replica first saw the record, not from its renewTime",
        ),
    ],
)
def test_decide(rec: LeaseRecord | None, first_seen: float, now: float, expected: Decision) -> None:
    assert decide(rec, ME, seen_at(rec, first_seen), now, TIMINGS) is expected


def test_a_renewal_restarts_the_standbys_count_and_an_unchanged_record_does_not() -> None:
    first = observe(None, record(OTHER, renew="t1"), 0)
    same = observe(first, record(OTHER, renew="t1"), 8)
    assert same == first  # unchanged: still first seen at 0
    assert decide(record(OTHER, renew="t1"), ME, same, 10, TIMINGS) is Decision.ACQUIRE
    renewed = observe(same, record(OTHER, renew="t2"), 9)
    assert renewed.seen_at == 9
    assert decide(record(OTHER, renew="t2"), ME, renewed, 10, TIMINGS) is Decision.WAIT
    assert decide(record(OTHER, renew="t2"), ME, renewed, 19, TIMINGS) is Decision.ACQUIRE


@pytest.mark.parametrize(
    ("renewed_at", "now", "leading"),
    [
        pytest.param(None, 0, False, id="never renewed: not leading"),
        pytest.param(100, 100, True, id="just renewed: leading"),
        pytest.param(100, 106.9, True, id="within the renew deadline: leading"),
        pytest.param(100, 107, False, id="at the renew deadline: stops acting"),
    ],
)
def test_leading_until_the_renew_deadline(renewed_at: float | None, now: float, leading: bool) -> None:
    assert (now < leading_until(renewed_at, TIMINGS)) is leading


def test_the_old_leader_stops_before_a_standby_can_take_over() -> None:
    """The safety argument with numbers: the leader's last renewal is sent at 100 and seen by the standby no earlier
    than that; the leader stops at 107, the standby may take over at 110 at the earliest."""
    renewal_sent = 100.0
    stops = leading_until(renewal_sent, TIMINGS)
    standby_seen = observe(None, record(OTHER, renew="t100"), renewal_sent)
    earliest_takeover = next(
        t / 10
        for t in range(1000, 2000)
        if decide(record(OTHER, renew="t100"), ME, standby_seen, t / 10, TIMINGS) is Decision.ACQUIRE
    )
    assert stops < earliest_takeover
    assert earliest_takeover - stops == pytest.approx(TIMINGS.lease_duration - TIMINGS.renew_deadline)


def spec(body: dict[str, Any]) -> dict[str, Any]:
    return dict(body["spec"])


def test_creating_the_lease_names_us_with_no_transitions() -> None:
    body = lease_body("vj", "ops", ME, None, TIMINGS, NOW)
    assert body["metadata"] == {"name": "vj", "namespace": "ops"}  # no resourceVersion: a create
    stamp = "2026-11-29T12:00:00.123456Z"
    assert spec(body) == {
        "holderIdentity": ME,
        "leaseDurationSeconds": 10,
        "acquireTime": stamp,
        "renewTime": stamp,
        "leaseTransitions": 0,
    }


def test_renewing_keeps_acquire_time_and_transitions_and_writes_against_the_version_read() -> None:
    body = lease_body("vj", "ops", ME, record(ME, acquire="2026-11-29T11:00:00.000000Z", transitions=3), TIMINGS, NOW)
    assert body["metadata"]["resourceVersion"] == "42"
    assert spec(body)["acquireTime"] == "2026-11-29T11:00:00.000000Z"
    assert spec(body)["renewTime"] == "2026-11-29T12:00:00.123456Z"
    assert spec(body)["leaseTransitions"] == 3


@pytest.mark.parametrize("previous", [OTHER, None], ids=["taking over an expired Lease", "taking a released Lease"])
def test_taking_over_counts_a_transition_and_restarts_acquire_time(previous: str | None) -> None:
    body = lease_body("vj", "ops", ME, record(previous, transitions=3), TIMINGS, NOW)
    assert spec(body)["holderIdentity"] == ME
    assert spec(body)["acquireTime"] == "2026-11-29T12:00:00.123456Z"
    assert spec(body)["leaseTransitions"] == 4


def test_a_fractional_lease_duration_is_written_rounded_up() -> None:
    body = lease_body("vj", "ops", ME, None, Timings(2.5, 2, 1), NOW)
    assert spec(body)["leaseDurationSeconds"] == 3  # never shorter than the standby's rule


def test_a_released_lease_has_no_holder_and_is_written_against_the_version_read() -> None:
    body = released_body("vj", "ops", record(ME, transitions=2), NOW, labels={"app": "x"})
    assert body["metadata"] == {"name": "vj", "namespace": "ops", "labels": {"app": "x"}, "resourceVersion": "42"}
    assert "holderIdentity" not in spec(body)
    assert spec(body)["leaseTransitions"] == 2
    assert LeaseRecord.from_lease(body).holder is None
    assert decide(LeaseRecord.from_lease(body), OTHER, seen_at(None, 0), 0, TIMINGS) is Decision.ACQUIRE


def test_a_lease_read_from_the_api_server() -> None:
    lease = {
        "metadata": {"resourceVersion": "7"},
        "spec": {"holderIdentity": "", "leaseDurationSeconds": 15, "leaseTransitions": 2},
    }
    assert LeaseRecord.from_lease(lease) == LeaseRecord(None, 15.0, None, None, 2, "7")
    assert LeaseRecord.from_lease({"metadata": {}, "spec": None}) == LeaseRecord(None, None, None, None, 0, None)


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        pytest.param(
            {"VIDEOJOB_LEADER_ELECTION_RENEW_DEADLINE": "10"},
            "RENEW_DEADLINE < VIDEOJOB_LEADER_ELECTION_LEASE",
            id="a renew deadline as long as the lease is refused",
        ),
        pytest.param(
            {"VIDEOJOB_LEADER_ELECTION_RETRY_PERIOD": "7"},
            "RETRY_PERIOD < VIDEOJOB_LEADER_ELECTION_RENEW",
            id="a retry period as long as the renew deadline is refused",
        ),
        pytest.param(
            {"VIDEOJOB_LEADER_ELECTION_LEASE_DURATION": "1"},
            "VIDEOJOB_LEADER_ELECTION_LEASE_DURATION",
            id="a lease shorter than 2 s is refused",
        ),
    ],
)
def test_election_timings_that_could_let_two_leaders_act_are_refused(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Settings.from_env(env)


def test_election_settings_default_to_off_with_client_go_like_timings() -> None:
    settings = Settings.from_env({})
    assert settings.leader_election is False
    assert (
        settings.leader_election_lease_duration,
        settings.leader_election_renew_deadline,
        settings.leader_election_retry_period,
    ) == (10, 7, 1)
    assert Settings.from_env({"VIDEOJOB_LEADER_ELECTION": "true"}).leader_election is True
