"""The VideoJob's status, derived from what is observed: pure functions, no I/O.

Level-based: the status is recomputed on every pass from the VideoJob, its Job (or None) and the Job's pods, so
a restarted operator converges to the truth instead of replaying remembered events. Terminal phases are sticky once
the Job bears them out (`terminal_holds`): the status is evidence of nothing, since whoever may patch
`videojobs/status` can write anything there.

Conditions (metav1.Condition, all six always present, positive polarity; types and reasons are declared in
videojob.api.conditions):

| type        | True when                               | so that                                              |
| ----------- | --------------------------------------- | ---------------------------------------------------- |
| `Admitted`  | a Job was created for it                | `kubectl wait --for=condition=Admitted vj/x`          |
| `Running`   | a transcoder pod is running             |                                                      |
| `Succeeded` | finished with artifacts (Unknown before) | `kubectl wait --for=condition=Succeeded vj/x`         |
| `Failed`    | finished without (reason says why)      | `kubectl wait --for=condition=Failed vj/x`            |
| `Cancelled` | stopped by `spec.cancel: true`          |                                                      |
| `Finished`  | any terminal phase (reason: the phase)  | `kubectl wait --for=condition=Finished vj/x`          |

`lastTransitionTime` changes only when a condition's status does; `observedGeneration` is the VideoJob's.

The operator is the status' only writer: `progress` is what the running pod last printed in its log (read by the
operator, bounded 0-99.9 while running), 100 once the job succeeded.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from videojob.api.conditions import ConditionType, Reason
from videojob.api.models import Phase, ResolvedPreset
from videojob.api.runtime import ExitCode, TranscodeResult
from videojob.controller.jobs import (
    ANNOTATION_PRESET,
    CONTAINER_NAME,
    LABEL_COMPLETION_INDEX,
    LABEL_HARDWARE,
    LABEL_PART,
    LABEL_SEGMENTS,
    PART_JOIN,
    PART_SEGMENTS,
)

TERMINAL = (Phase.SUCCEEDED.value, Phase.FAILED.value, Phase.CANCELLED.value)
MAX_MESSAGE = 4096
MAX_ARTIFACTS = 16  # status.artifacts' bound in the CRD: a longer list would make the API server refuse the status
NO_POD_AFTER = 30  # seconds a Job may exist without a pod before the status says so
RESULT_WAIT = 60  # seconds a finished Job's VideoJob stays Running while the pod that says how is not seen

_REASON_CHARS = re.compile(r"[^A-Za-z0-9_,:]")
_EXIT_REASONS = {
    ExitCode.BAD_INPUT: Reason.BAD_INPUT,
    ExitCode.UNSUPPORTED: Reason.UNSUPPORTED,
    ExitCode.TRANSIENT: Reason.TRANSIENT_ERROR,
    ExitCode.INTERNAL: Reason.INTERNAL_ERROR,
}

Body = Mapping[str, Any]


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with seconds, as Kubernetes writes metav1.Time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def precise_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds (fixed width, so these strings sort as the times they name)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def precise(text: Any) -> str | None:
    """Any RFC 3339 time as `precise_timestamp` writes it (None when it is not one): "…:05Z" and "…:05.000000Z"
    name the same moment but do not sort as strings."""
    if not isinstance(text, str):
        return None
    if _PRECISE_FORMAT.fullmatch(text) and text[0] != "0" and parse_time(text) is not None:
        return text  # already one (every recorded queuedAt): a cache entry for each would hold 10,000 copies
    return _precise(text)


_PRECISE_FORMAT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


@functools.lru_cache(maxsize=1 << 12)  # creationTimestamps, to the second: a burst shares a few
def _precise(text: str) -> str | None:
    moment = parse_time(text)
    return None if moment is None else precise_timestamp(moment)


def parse_time(text: Any) -> datetime | None:
    """A time from a status or an object's metadata, always timezone-aware in UTC; None when it is not a time.

    Statuses can hold what someone wrote by hand: a time without a zone is taken as UTC (comparing it with an aware
    time would raise TypeError), and one that leaves the range of `datetime` in UTC (year 1 with a positive offset)
    is no time at all."""
    if not text or not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def reason_word(text: str, fallback: str = Reason.FAILED) -> str:
    """A CamelCase reason as metav1.Condition allows (letters first, [A-Za-z0-9_,:], at most 128)."""
    word = _REASON_CHARS.sub("", text)[:128].rstrip(",:")
    return word if word and word[0].isalpha() else fallback


def parse_result(message: str | None) -> TranscodeResult | None:
    """The transcoder's TranscodeResult from a termination message, or None when it is not one."""
    if not message:
        return None
    try:
        return TranscodeResult.model_validate(json.loads(message))
    except (ValueError, ValidationError):
        return None


# --- reading Jobs and pods ------------------------------------------------------------------------------------


def job_condition(job: Body | None, *types: str) -> dict[str, Any] | None:
    """The first True condition of the Job among `types`."""
    for condition in ((job or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") in types and condition.get("status") == "True":
            return dict(condition)
    return None


def transcoder_state(pod: Body) -> dict[str, Any]:
    """The transcoder container's state ({"running": ...} / {"terminated": ...} / {"waiting": ...}) or {}."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER_NAME:
            return dict(status.get("state") or {})
    return {}


def pod_started(pod: Body) -> bool:
    """The pod got as far as running its container (an attempt that counts)."""
    phase = (pod.get("status") or {}).get("phase")
    state = transcoder_state(pod)
    return phase in ("Running", "Succeeded", "Failed") and ("running" in state or "terminated" in state)


def _pod_created(pod: Body) -> str:
    return str(pod.get("metadata", {}).get("creationTimestamp", ""))


def _finished_at(pod: Body) -> str:
    return str(transcoder_state(pod).get("terminated", {}).get("finishedAt") or _pod_created(pod))


# Container waiting reasons that need a person (a missing Secret, a wrong image), shown in the status.
_STUCK = (
    Reason.CREATE_CONTAINER_CONFIG_ERROR,
    Reason.ERR_IMAGE_PULL,
    Reason.IMAGE_PULL_BACK_OFF,
    Reason.INVALID_IMAGE_NAME,
    Reason.CRASH_LOOP_BACK_OFF,
)
# Pending reasons worth a Warning Event: the job waits on something a person must fix (or on free capacity).
_PENDING_WARNINGS = frozenset({*_STUCK, Reason.UNSCHEDULABLE, Reason.NO_POD, Reason.JOB_CREATE_FAILED})


def stops_its_job(status: Mapping[str, Any]) -> bool:
    """Whether a VideoJob in this status needs its Job deleted: cancelled, or failed because its pod could not
    start (the Job would otherwise wait for its deadline, holding a running slot)."""
    phase = status.get("phase")
    return phase == Phase.CANCELLED.value or (phase == Phase.FAILED.value and status.get("reason") in _STUCK)


def _waiting_problem(pods: Sequence[Body]) -> tuple[str, str] | None:
    """(reason, message) when the newest pod waits for something: the scheduler (e.g. no free GPU) or a container
    that cannot start (e.g. its credentials Secret is missing)."""
    for pod in sorted(pods, key=_pod_created, reverse=True):
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                return Reason.UNSCHEDULABLE, str(condition.get("message") or condition.get("reason") or "unschedulable")
        waiting = transcoder_state(pod).get("waiting") or {}
        if waiting.get("reason") in _STUCK:
            return str(waiting["reason"]), str(waiting.get("message") or waiting["reason"])
        return None
    return None


def failure(job: Body | None, pods: Sequence[Body], outputs: Collection[str] | None = None) -> tuple[str, str]:
    """(reason, message) of a failed Job: the transcoder's own words when it left them, else its exit code, else
    the Job controller's reason (DeadlineExceeded, BackoffLimitExceeded, PodFailurePolicy). Objects the failed run
    wrote and could not delete are named (those of its `outputs` only: a pod's result may say anything)."""
    reason, message = _failure(job, pods)
    last = _last_failed(pods)
    result = parse_result(transcoder_state(last)["terminated"].get("message")) if last is not None else None
    left = [uri for uri in (result.leftovers if result is not None else []) if outputs is not None and uri in outputs]
    if left:
        message += (
            f"; it could not delete what it had written, which carries its uid in its metadata "
            f"(x-amz-meta-videojob-uid): {', '.join(left)}"
        )
    return reason, message


def _last_failed(pods: Sequence[Body]) -> Body | None:
    failed = [
        p
        for p in pods
        if "terminated" in transcoder_state(p) and transcoder_state(p)["terminated"].get("exitCode", 0) != 0
    ]
    return max(failed, key=_finished_at) if failed else None


def _failure(job: Body | None, pods: Sequence[Body]) -> tuple[str, str]:
    job_failed = job_condition(job, "Failed", "FailureTarget") or {}
    job_reason = str(job_failed.get("reason") or "")
    job_message = str(job_failed.get("message") or "")
    failed = [
        p
        for p in pods
        if "terminated" in transcoder_state(p) and transcoder_state(p)["terminated"].get("exitCode", 0) != 0
    ]
    last = max(failed, key=_finished_at) if failed else None
    terminated = transcoder_state(last)["terminated"] if last is not None else {}
    result = parse_result(terminated.get("message"))
    if job_reason == "DeadlineExceeded":
        limit = ((job or {}).get("spec") or {}).get("activeDeadlineSeconds")
        message = "stopped: the job ran longer than its time limit"
        message += f" (activeDeadlineSeconds {limit} s)" if limit else " (activeDeadlineSeconds)"
        return Reason.DEADLINE_EXCEEDED, message + (f"; {job_message}" if job_message else "")
    if result is not None and not result.ok:
        return reason_word(result.reason), result.message or f"the transcoder failed ({result.reason})"
    if terminated:
        code = int(terminated.get("exitCode", 1))
        if terminated.get("reason") == "OOMKilled":
            return Reason.OOM_KILLED, f"the transcoder ran out of memory (exit code {code})"
        try:
            reason = _EXIT_REASONS.get(ExitCode(code), Reason.TRANSCODER_EXITED)
        except ValueError:
            reason = Reason.TRANSCODER_EXITED
        detail = str(terminated.get("message") or "").strip()
        message = f"the transcoder exited with code {code}" + (f": {detail}" if detail else "")
        if job_reason == "BackoffLimitExceeded":
            message += " (no retries left)"
        return reason, message
    return reason_word(job_reason or Reason.JOB_FAILED), job_message or "the Job failed"


def finished_at(job: Body | None) -> datetime | None:
    """When the Job was marked complete or failed (its completionTime, else its condition's transition), or None."""
    marked = job_condition(job, "Complete", "SuccessCriteriaMet", "Failed", "FailureTarget")
    if job is None or marked is None:
        return None
    return parse_time((job.get("status") or {}).get("completionTime")) or parse_time(marked.get("lastTransitionTime"))


def _exit_code(pod: Body) -> Any:
    return transcoder_state(pod).get("terminated", {}).get("exitCode")


def awaits_pod(job: Body | None, pods: Sequence[Body], now: datetime) -> str | None:
    """What a finished Job's VideoJob waits to see, or None: its Job is marked complete (or failed by its pods),
    yet no pod of it that exited 0 (nonzero) is seen, and it finished less than RESULT_WAIT seconds ago. The pods'
    watch lags the Jobs' (each reconnects on its own after the API server restarted, with its own back-off), and
    only that pod's termination message holds the result (its artifacts) or the transcoder's reason: a terminal
    phase written now would be final without them. For a chunked VideoJob the result is its join's."""
    finished = finished_at(job)
    if finished is None or now >= finished + timedelta(seconds=RESULT_WAIT):
        return None
    if job_condition(job, "Complete", "SuccessCriteriaMet"):
        chunked = job_segments(job) > 1
        if any(_exit_code(pod) == 0 for pod in pods if _is_join(pod) or not chunked):
            return None
        return "its Job is complete; waiting to see its pod's result"
    if (job_condition(job, "Failed", "FailureTarget") or {}).get("reason") == "DeadlineExceeded":
        return None  # the Job controller stopped it: no pod's exit says why
    if any(_exit_code(pod) not in (None, 0) for pod in pods):
        return None
    return "its Job failed; waiting to see its pod's exit"


def succeeded_result(pods: Sequence[Body]) -> TranscodeResult | None:
    for pod in sorted(pods, key=_finished_at, reverse=True):
        terminated = transcoder_state(pod).get("terminated") or {}
        if terminated.get("exitCode") == 0:
            return parse_result(terminated.get("message"))
    return None


# --- chunked VideoJobs: two Jobs seen as one ------------------------------------------------------------------

JOINING = "VideojobJoining"  # a condition only `chunked_view` writes: segments done, the join not finished
SEGMENTS_SHARE = 95.0  # percent of the progress that is the segments' (the join copies, encodes sound, uploads)


def template_labels(job: Body) -> Mapping[str, str]:
    return ((((job.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")) or {}


def job_segments(job: Body | None) -> int:
    """How many segments the Job's VideoJob was split into (its pod template's label; 1 for a whole job)."""
    if job is None or template_labels(job).get(LABEL_PART) != PART_SEGMENTS:
        return 1
    try:
        return max(1, int(template_labels(job).get(LABEL_SEGMENTS, "1")))
    except ValueError:
        return 1


def needs_join(segments_job: Body | None, join: Body | None, pods: Sequence[Body] = ()) -> bool:
    """The segments are done and no join Job exists: the operator creates it. Done: the segments' Indexed Job
    completed, or, before the Job controller says so, every index has a pod that succeeded (`pods`: the pods the
    index proved the Job's)."""
    return (
        segments_job is not None
        and job_segments(segments_job) > 1
        and join is None
        and not (segments_job.get("metadata") or {}).get("deletionTimestamp")
        and job_condition(segments_job, "Failed", "FailureTarget") is None
        and (
            job_condition(segments_job, "Complete", "SuccessCriteriaMet") is not None
            or every_index_succeeded(job_segments(segments_job), pods)
        )
    )


def _is_join(pod: Body) -> bool:
    return (pod.get("metadata", {}).get("labels") or {}).get(LABEL_PART) == PART_JOIN


def every_index_succeeded(segments: int, pods: Sequence[Body]) -> bool:
    """Each index 0..segments-1 has a segment pod in phase Succeeded (the kubelet's word: the pod's container
    exited 0 after storing its segment). The Job controller marks the Job complete a second or more later (it
    batches pod updates), and the join need not wait for that: a pod that could fake this (one whose controller is
    the Job) is one the Job controller would count too."""
    succeeded = {
        str((pod["metadata"].get("labels") or {}).get(LABEL_COMPLETION_INDEX))
        for pod in pods
        if (pod["metadata"].get("labels") or {}).get(LABEL_PART) == PART_SEGMENTS
        and (pod.get("status") or {}).get("phase") == "Succeeded"
    }
    return succeeded >= {str(index) for index in range(segments)}


def chunked_view(segments_job: Body, join: Body | None, segment_pods: Sequence[Body] = ()) -> dict[str, Any]:
    """A chunked VideoJob's two Jobs as the one Job `derive_status` reads: the segments' identity and placement,
    and the state of the whole: running while segments or the join run; complete when the join is; failed when
    either failed. Segments done without a join yet carry the JOINING condition. Done: their Job completed, or
    every index has a pod that succeeded (`segment_pods`, see `every_index_succeeded`); in that case the join's
    completion waits for the Job controller to complete the segments' Job too (a terminal phase must hold)."""
    status = dict(segments_job.get("status") or {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") not in ("Complete", "SuccessCriteriaMet")]
    marked = job_condition(segments_job, "Complete", "SuccessCriteriaMet") is not None
    if job_condition(segments_job, "Failed", "FailureTarget") is None and (
        marked or every_index_succeeded(job_segments(segments_job), segment_pods)
    ):
        join_status = dict((join or {}).get("status") or {})
        conditions = [*(join_status.get("conditions") or [])]
        if not marked:
            conditions = [c for c in conditions if c.get("type") not in ("Complete", "SuccessCriteriaMet")]
        if job_condition(join, "Complete", "SuccessCriteriaMet", "Failed", "FailureTarget") is None or not marked:
            conditions.append({"type": JOINING, "status": "True"})
        status = {**join_status, "conditions": conditions}
        if not marked:
            status.pop("completionTime", None)
    else:
        status["conditions"] = conditions
        status.pop("completionTime", None)
    return {**segments_job, "status": status}


def running_slots(job: Body | None) -> int:
    """Slots of the admission limits a VideoJob's Job holds: one per segment until its segments are done."""
    if job is None or job_condition(job, JOINING) is not None:
        return 1
    return job_segments(job)


def aggregate_progress(pods: Sequence[Body], read: Mapping[str, float], segments: int) -> float | None:
    """The progress of a VideoJob from its pods and what their logs last said (`read`: pod uid -> percent).
    A whole job: its newest pod that reported. A chunked one: the mean over its segments (a finished one counts
    100, one not reported yet 0) for SEGMENTS_SHARE of it, and the join for the rest."""
    if segments <= 1:
        reported = [p for p in pods if str(p["metadata"].get("uid")) in read]
        if not reported:
            return None
        return read[str(max(reported, key=_pod_created)["metadata"]["uid"])]
    per_index: dict[str, float] = {}
    joined: float = 0.0
    for pod in sorted(pods, key=_pod_created):
        labels = pod["metadata"].get("labels") or {}
        state = transcoder_state(pod).get("terminated") or {}
        value = 100.0 if state and state.get("exitCode") == 0 else read.get(str(pod["metadata"].get("uid")), 0.0)
        if labels.get(LABEL_PART) == PART_JOIN:
            joined = max(joined, value)
        else:
            index = str(labels.get(LABEL_COMPLETION_INDEX, "0"))
            per_index[index] = max(per_index.get(index, 0.0), value)
    done = sum(min(v, 100.0) for v in per_index.values()) / segments
    return round(done * SEGMENTS_SHARE / 100 + joined * (100 - SEGMENTS_SHARE) / 100, 1)


def attempts_of(started: Sequence[Body]) -> int:
    """Runs started: the most any one segment took (a whole job has one segment; a join counts as its own)."""
    counts: dict[tuple[str, str], int] = {}
    for pod in started:
        labels = pod["metadata"].get("labels") or {}
        key = (str(labels.get(LABEL_PART, "")), str(labels.get(LABEL_COMPLETION_INDEX, "")))
        counts[key] = counts.get(key, 0) + 1
    return max(counts.values(), default=0)


# --- the status ---------------------------------------------------------------------------------------------


def terminal_holds(phase: str, job: Body | None) -> bool:
    """Whether a terminal phase found in the status stands, given the VideoJob's own Job (or None).

    The status is no proof: anyone allowed to patch `videojobs/status` can write `Succeeded` there. The Job is the
    proof (its conditions are written by the Job controller; tenants cannot write `jobs/status`): while it runs
    unfinished, no terminal phase stands (else a forged Succeeded would free its running slot while it keeps
    going); once it finished, only the phase it finished with. When it is gone or going, the recorded phase stands:
    nothing runs any more, and the operator deletes a Job itself only after recording why."""
    if job is None or (job.get("metadata") or {}).get("deletionTimestamp"):
        return True
    if job_condition(job, "Complete", "SuccessCriteriaMet"):
        return phase == Phase.SUCCEEDED.value
    if job_condition(job, "Failed", "FailureTarget"):
        return phase == Phase.FAILED.value
    return False


def owned_artifacts(artifacts: Sequence[Any], outputs: Collection[str] | None) -> list[dict[str, Any]]:
    """The artifacts (wire form) a VideoJob may list: only objects it writes (`outputs`, from its spec: see
    `runtime.output_uris`), each once, at most MAX_ARTIFACTS. A pod's result is written by whatever ran in it, so
    it could name any object, such as another tenant's; None means the outputs are unknown: nothing is kept."""
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    for artifact in artifacts:
        wire = artifact.to_wire() if hasattr(artifact, "to_wire") else dict(artifact)
        uri = wire.get("uri")
        if outputs is None or not isinstance(uri, str) or uri not in outputs or uri in seen:
            continue
        seen.add(uri)
        kept.append(wire)
    return kept[:MAX_ARTIFACTS]


FOREVER = datetime.max.replace(tzinfo=UTC)


def derived_until(status: Mapping[str, Any], job: Body | None, now: datetime, stuck_timeout: float | None) -> datetime:
    """Until when `derive_status` derives this status again from the same VideoJob, Job and pods. It reads the
    clock to fill in times once (kept with the status) and, while an admitted VideoJob is Pending, to say that its
    Job has had no pod for NO_POD_AFTER seconds and to fail it once stuck for `stuck_timeout`, both counted from
    the Job's creation: the next of those moments, else forever. A Running VideoJob whose Job finished waits to
    see its pod until RESULT_WAIT seconds after that (`awaits_pod`)."""
    if status.get("phase") == Phase.RUNNING.value and (finished := finished_at(job)) is not None:
        return max(finished + timedelta(seconds=RESULT_WAIT), now)
    if status.get("phase") != Phase.PENDING.value or job is None:
        return FOREVER
    created = parse_time((job.get("metadata") or {}).get("creationTimestamp"))
    if created is None:
        return now  # cannot tell: derived again in every pass
    after = [NO_POD_AFTER] if stuck_timeout is None else [NO_POD_AFTER, stuck_timeout]
    return min((m for m in (created + timedelta(seconds=s) for s in after) if m >= now), default=FOREVER)


def derive_status(
    vj: Body,
    job: Body | None,
    pods: Sequence[Body],
    now: datetime,
    queue_position: int | None = None,
    problem: str | None = None,
    blocked: str | None = None,
    queued_at: str | None = None,
    held: str | None = None,
    stuck_timeout: float | None = None,
    outputs: Collection[str] | None = None,
    progress: float | None = None,
    preset_missing: str | None = None,
) -> dict[str, Any]:
    """The VideoJob's status (wire form) from what is observed.

    `queue_position`: its place in the admission queue when it waits; `problem`: why its spec can never run
    (operator-level validation), which fails it without a Job; `blocked`: why its admitted Job could not be
    created yet (e.g. a ResourceQuota), retried; `held`: what a queued VideoJob waits for beyond its turn (its
    namespace's limit); `stuck_timeout`: seconds after which a Job whose pod cannot start
    for a configuration problem fails its VideoJob (see `stops_its_job`); `outputs`: the URIs its spec lets it
    write (`runtime.output_uris`), the only artifacts it may list; `progress`: the percent its running pod last
    reported (in its log, see `runtime.parse_progress`); `preset_missing`: why it waits for the preset it names
    (not queued). `status.preset` comes from its Job's pod template (`job_preset`), which cannot change.

    Nothing in the old status decides the phase unless its Job bears it out (`terminal_holds`): a terminal phase
    that does not hold is ignored with everything that came with it (reason, message, artifacts, times).
    """
    meta = vj.get("metadata", {})
    spec = vj.get("spec", {})
    old: dict[str, Any] = dict(vj.get("status") or {})
    if old.get("phase") in TERMINAL and not terminal_holds(str(old["phase"]), job):
        old = {k: v for k, v in old.items() if k in _OBSERVED_FIELDS}
    old_phase = old.get("phase")
    new: dict[str, Any] = {k: v for k, v in old.items() if k not in ("queuePosition", "conditions")}
    if "artifacts" in new:
        new["artifacts"] = (
            owned_artifacts(new["artifacts"] or [], outputs)
            if outputs is not None
            else [a for a in new["artifacts"] or [] if isinstance(a, Mapping)][:MAX_ARTIFACTS]
        )
    new.setdefault("progress", 0)
    new.setdefault("attempts", 0)
    new.setdefault("artifacts", [])
    new["queuedAt"] = old.get("queuedAt") or queued_at or meta.get("creationTimestamp") or precise_timestamp(now)
    if meta.get("generation") is not None:
        new["observedGeneration"] = meta["generation"]

    if job is not None:
        new["jobName"] = job["metadata"]["name"]
        hardware = job_hardware(job)
        # Once finished, the transcoder's result says what really encoded (auto falls back to CPU when NVENC
        # cannot start on its GPU node); the Job's label only says where it was placed.
        if hardware in ("cpu", "nvidia") and old_phase not in TERMINAL:
            new["hardware"] = hardware
    started = sorted((p for p in pods if pod_started(p)), key=_pod_created)
    new["attempts"] = max(int(new["attempts"]), attempts_of(started))
    if started:
        new["node"] = started[-1].get("spec", {}).get("nodeName") or new.get("node")
        new["startedAt"] = new.get("startedAt") or (started[0].get("status") or {}).get("startTime") or timestamp(now)
    if new.get("node") is None:
        new.pop("node", None)

    if old_phase in TERMINAL:
        phase = old_phase
    elif problem is not None:
        phase, new["reason"], new["message"] = Phase.FAILED.value, Reason.INVALID_SPEC, problem
    elif (unseen := awaits_pod(job, pods, now)) is not None:
        phase, new["reason"], new["message"] = Phase.RUNNING.value, Reason.RUNNING, unseen
    elif job_condition(job, "Complete", "SuccessCriteriaMet"):
        phase = Phase.SUCCEEDED.value
        result = succeeded_result(pods)
        new["progress"] = 100
        new["reason"] = Reason.SUCCEEDED
        if result is not None:
            new["artifacts"] = owned_artifacts(result.artifacts, outputs)
            if result.hardware is not None:
                new["hardware"] = result.hardware
            foreign = len(result.artifacts) - len(new["artifacts"])
            new["message"] = result.message or f"{len(new['artifacts'])} artifact(s) written"
            if foreign > 0:
                new["message"] += (
                    f"; {foreign} artifact(s) of its result left out: not objects its spec writes "
                    f"({_outputs_text(outputs)})"
                )
        else:
            new["message"] = "the transcoder succeeded but left no readable result"
    elif job_condition(job, "Failed", "FailureTarget"):
        phase = Phase.FAILED.value
        new["reason"], new["message"] = failure(job, pods, outputs)
    elif spec.get("cancel"):
        phase, new["reason"] = Phase.CANCELLED.value, Reason.CANCELLED
        new["message"] = "cancelled by spec.cancel" if new.get("jobName") else "cancelled before it started"
    elif job is None and new.get("jobName"):
        phase, new["reason"] = Phase.FAILED.value, Reason.JOB_DELETED
        new["message"] = f"its Job {new['jobName']} was deleted before it finished"
    elif job is None and preset_missing:
        phase, new["reason"], new["message"] = Phase.PENDING.value, Reason.PRESET_NOT_FOUND, preset_missing
    elif job is None and blocked:
        phase, new["reason"], new["message"] = Phase.PENDING.value, Reason.JOB_CREATE_FAILED, f"retrying: {blocked}"
    elif job is None:
        phase, new["reason"] = Phase.PENDING.value, Reason.QUEUED
        new["message"] = f"position {queue_position} in the queue" if queue_position else "waiting for admission"
        if held:
            new["message"] += f"; {held}"
    elif job_condition(job, JOINING) and not any(
        _is_join(p) and pod_started(p) and (p.get("status") or {}).get("phase") != "Succeeded" for p in pods
    ):
        phase, new["reason"] = Phase.RUNNING.value, Reason.JOINING.value
        if progress is not None:
            new["progress"] = min(max(float(progress), 0.0), 99.9)
        if any(_is_join(p) and (p.get("status") or {}).get("phase") == "Succeeded" for p in pods):
            # the join's pod is done; the Job controller has yet to mark its Job, or the segments' (chunked_view)
            new["message"] = f"its {job_segments(job)} segments are joined; waiting for the Jobs to be marked complete"
        else:
            new["message"] = f"its {job_segments(job)} segments are encoded; waiting for the join"
    elif any((p.get("status") or {}).get("phase") == "Running" and "running" in transcoder_state(p) for p in pods):
        running = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase") == Reason.RUNNING and "running" in transcoder_state(p)
        ]
        phase, new["reason"] = Phase.RUNNING.value, Reason.RUNNING
        if progress is not None:
            new["progress"] = min(max(float(progress), 0.0), 99.9)  # 100 means Succeeded
        new["message"] = f"running on {new.get('node', 'a node')} (attempt {new['attempts']})"
        if job is not None and job_segments(job) > 1:
            if job_condition(job, JOINING):
                new["reason"] = Reason.JOINING.value
                new["message"] = f"joining its {job_segments(job)} segments on {new.get('node', 'a node')}"
            else:
                new["message"] = f"{len(running)} of {job_segments(job)} segments encoding (attempt {new['attempts']})"
    elif old_phase == Phase.RUNNING.value:
        phase, new["reason"] = Phase.RUNNING.value, Reason.RETRYING  # between attempts: the Job starts another pod
        new["message"] = f"attempt {new['attempts']} failed; the Job starts another"
    else:
        phase = Phase.PENDING.value
        waiting = _waiting_problem(pods)
        created = parse_time(((job or {}).get("metadata") or {}).get("creationTimestamp"))
        if waiting is None and not pods and created is not None and (now - created).total_seconds() > NO_POD_AFTER:
            # The Job controller says why in the Job's Events (the operator does not read Events): usually a
            # missing PriorityClass, ServiceAccount or a ResourceQuota on pods.
            waiting = (
                Reason.NO_POD,
                f"the Job controller has created no pod for Job {new['jobName']} yet; "
                f"`kubectl describe job {new['jobName']}` shows why",
            )
        new["reason"], new["message"] = waiting or (
            Reason.ADMITTED,
            f"Job {new['jobName']} created; waiting for its pod",
        )
        age = (now - created).total_seconds() if created is not None else 0.0
        if waiting is not None and waiting[0] in _STUCK and stuck_timeout is not None and age > stuck_timeout:
            phase = Phase.FAILED.value
            new["message"] = (
                f"{waiting[1]}; gave up after {stuck_timeout:g} s and stopped Job {new['jobName']} "
                "to free its slot: fix the cause and create the VideoJob again"
            )

    new["phase"] = phase
    preset = job_preset(job) if job is not None else None
    if preset is not None:
        new["preset"] = preset
    if phase == Phase.PENDING.value and job is None and queue_position:
        new["queuePosition"] = queue_position
    if phase in TERMINAL and old_phase not in TERMINAL:
        completed = job_condition(job, "Complete", "SuccessCriteriaMet", "Failed", "FailureTarget") or {}
        new["completedAt"] = (
            ((job or {}).get("status") or {}).get("completionTime")
            or completed.get("lastTransitionTime")
            or timestamp(now)
        )
    elif phase in TERMINAL and job_condition(job, "Complete", "SuccessCriteriaMet", "Failed", "FailureTarget"):
        # the Job's own record of when it finished, over whatever the status says
        completed = job_condition(job, "Complete", "SuccessCriteriaMet", "Failed", "FailureTarget") or {}
        new["completedAt"] = (
            ((job or {}).get("status") or {}).get("completionTime")
            or completed.get("lastTransitionTime")
            or new.get("completedAt")
            or timestamp(now)
        )
        if not started and new.get("startedAt") is None and phase == Phase.SUCCEEDED.value:
            new["startedAt"] = new["completedAt"]
    if "message" in new and isinstance(new["message"], str):
        new["message"] = new["message"][:MAX_MESSAGE]
    if "reason" in new:
        new["reason"] = reason_word(str(new["reason"]))
    new["conditions"] = conditions(new, old.get("conditions") or [], now)
    return new


# What the operator itself observed and keeps whatever the phase: when a terminal phase in the status does not
# hold, these stay and everything else is derived again.
_OBSERVED_FIELDS = ("queuedAt", "jobName", "attempts", "startedAt", "node", "observedGeneration", "preset")


def job_preset(job: Body) -> dict[str, Any] | None:
    """The preset a Job was built with (`jobs.ANNOTATION_PRESET` on its pod template), or None."""
    template = ((job.get("spec") or {}).get("template") or {}).get("metadata") or {}
    text = (template.get("annotations") or {}).get(ANNOTATION_PRESET)
    if not isinstance(text, str):
        return None
    try:
        return ResolvedPreset.model_validate_json(text).to_wire()
    except ValidationError:
        return None


def job_hardware(job: Body) -> str | None:
    """Where the operator placed the Job ("cpu" or "nvidia"), from its pod template's labels: a Job's template
    cannot change after creation, while its own labels can be edited by anyone who may patch Jobs."""
    template = ((job.get("spec") or {}).get("template") or {}).get("metadata") or {}
    hardware = (template.get("labels") or {}).get(LABEL_HARDWARE)
    if hardware is None:  # a slim Job without its template (older index entries, tests)
        hardware = (job["metadata"].get("labels") or {}).get(LABEL_HARDWARE)
    return hardware if hardware in ("cpu", "nvidia") else None


def _outputs_text(outputs: Collection[str] | None) -> str:
    if not outputs:
        return "none known"
    shown = ", ".join(list(outputs)[:3])
    return shown + (f" and {len(outputs) - 3} more" if len(outputs) > 3 else "")


def conditions(status: Mapping[str, Any], old: Sequence[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The six conditions of a status, keeping lastTransitionTime where a condition's status did not change."""
    phase = status["phase"]
    reason = str(status.get("reason") or phase)
    message = str(status.get("message") or "")
    admitted = bool(status.get("jobName"))
    finished = phase in TERMINAL
    wanted: list[tuple[str, bool | None, str, str]] = [
        (
            ConditionType.ADMITTED,
            admitted,
            Reason.JOB_CREATED if admitted else (reason if phase in TERMINAL else Reason.QUEUED),
            f"Job {status['jobName']} on {status.get('hardware', 'cpu')}" if admitted else message,
        ),
        (
            ConditionType.RUNNING,
            phase == Phase.RUNNING.value,
            reason if phase == Phase.RUNNING.value else phase,
            message,
        ),
        # Unknown until the outcome is known (Argo and Kueue do the same).
        (
            ConditionType.SUCCEEDED,
            phase == Phase.SUCCEEDED.value if finished else None,
            reason if phase == Phase.SUCCEEDED.value else phase,
            message,
        ),
        (ConditionType.FAILED, phase == Phase.FAILED.value, reason if phase == Phase.FAILED.value else phase, message),
        (
            ConditionType.CANCELLED,
            phase == Phase.CANCELLED.value,
            reason if phase == Phase.CANCELLED.value else phase,
            message,
        ),
        # True whatever the outcome, so `kubectl wait --for=condition=Finished` returns for failures too.
        (ConditionType.FINISHED, finished, phase, message),
    ]
    previous = {str(c.get("type")): c for c in old}
    out = []
    for kind, true, why, text in wanted:
        value = "Unknown" if true is None else "True" if true else "False"
        before = previous.get(kind)
        since = before.get("lastTransitionTime") if before and before.get("status") == value else None
        condition: dict[str, Any] = {
            "type": kind,
            "status": value,
            "reason": reason_word(why, fallback=phase),
            "message": text[:MAX_MESSAGE],
            "lastTransitionTime": since or timestamp(now),
        }
        if status.get("observedGeneration") is not None:
            condition["observedGeneration"] = status["observedGeneration"]
        out.append(condition)
    return out


def status_patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The smallest JSON merge patch turning `old` into `new` (an empty dict when nothing changed)."""
    old = old or {}
    patch: dict[str, Any] = {key: value for key, value in new.items() if old.get(key) != value}
    patch.update({key: None for key in old if key not in new})
    patch.pop("notifications", None)  # written by the notifier only (notify.py): a pass's copy may be older
    return patch


def transition_events(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """Kubernetes Events (type, reason, message) for what changed between two statuses."""
    old = old or {}
    old_phase, phase = old.get("phase"), new["phase"]
    events: list[tuple[str, str, str]] = []
    if old_phase is None and phase == Phase.PENDING.value and not new.get("jobName"):
        events.append(("Normal", Reason.QUEUED, str(new.get("message") or "queued")))
    if new.get("jobName") and not old.get("jobName"):
        events.append(("Normal", Reason.ADMITTED, f"created Job {new['jobName']} on {new.get('hardware', 'cpu')}"))
    was_started = old_phase in (Phase.RUNNING.value, *TERMINAL) or int(old.get("attempts") or 0) > 0
    if not was_started and (phase == Phase.RUNNING.value or (phase in TERMINAL and int(new.get("attempts") or 0))):
        events.append(("Normal", Reason.STARTED, f"running on {new.get('node', 'a node')} (attempt 1)"))
    elif int(new.get("attempts") or 0) > int(old.get("attempts") or 0) > 0:
        events.append(("Warning", Reason.RETRYING, f"attempt {new['attempts']} started on {new.get('node', 'a node')}"))
    if (
        phase == Phase.PENDING.value
        and new.get("reason") in _PENDING_WARNINGS
        and new.get("reason") != old.get("reason")
    ):  # not a phase change, but `kubectl describe vj` should show what it waits for
        events.append(("Warning", str(new["reason"]), str(new.get("message") or new["reason"])))
    if old_phase in TERMINAL and phase != old_phase:  # derive_status found the recorded phase unfounded
        events.append(
            (
                "Warning",
                Reason.STATUS_CORRECTED,
                f"the status said {old_phase}, which its Job does not bear out (a status written by someone "
                f"other than the operator?); the operator derived {phase} from its Job and pods",
            )
        )
    if phase != old_phase and phase in TERMINAL:
        kind = "Warning" if phase == Phase.FAILED.value else "Normal"
        reason = str(new.get("reason") or phase)
        text = str(new.get("message") or phase)
        events.append((kind, phase, f"{reason}: {text}" if phase == Phase.FAILED.value else text))
    return events


# TTL and GitOps. A VideoJob that a GitOps tool keeps in the cluster (Argo CD with selfHeal, Flux) would be created
# again after the TTL deleted it, and encode again, forever. So the TTL leaves alone a VideoJob that carries one of
# these tools' tracking marks, and the annotation `videojob.dev/ttl` decides explicitly: `Keep` (never deleted by the
# TTL) or `Delete` (deleted by the TTL even when tracked).
ANNOTATION_TTL = "videojob.dev/ttl"
GITOPS_ANNOTATIONS = ("argocd.argoproj.io/tracking-id",)  # Argo CD's annotation tracking (the default since 3.0)
TTL_ANNOTATIONS = frozenset({ANNOTATION_TTL, *GITOPS_ANNOTATIONS})  # what the index keeps of the annotations
GITOPS_LABELS = (
    "app.kubernetes.io/instance",  # Argo CD's label tracking (the default before 3.0); Helm releases too
    "argocd.argoproj.io/instance",  # the label key Argo CD's docs suggest instead
    "kustomize.toolkit.fluxcd.io/name",  # Flux's Kustomization
    "helm.toolkit.fluxcd.io/name",  # Flux's HelmRelease
)


def ttl_exempt(vj: Body) -> str | None:
    """Why the TTL must not delete this VideoJob (the mark that says so), or None."""
    meta = vj.get("metadata") or {}
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    explicit = str(annotations.get(ANNOTATION_TTL, "")).strip().lower()
    if explicit == "delete":
        return None
    if explicit == "keep":
        return f"annotation {ANNOTATION_TTL}: Keep"
    for key in GITOPS_ANNOTATIONS:
        if annotations.get(key):
            return f"annotation {key} (GitOps would create it again)"
    for key in GITOPS_LABELS:
        if labels.get(key):
            return f"label {key} (GitOps would create it again)"
    return None


def ttl_remaining(vj: Body, default_ttl: int | None, now: datetime) -> float | None:
    """Seconds until a finished VideoJob is due for deletion (<= 0: now); None when it is kept (no TTL, or
    `ttl_exempt`)."""
    status = vj.get("status") or {}
    if status.get("phase") not in TERMINAL or ttl_exempt(vj) is not None:
        return None
    ttl = (vj.get("spec") or {}).get("ttlSecondsAfterFinished", default_ttl)
    finished = parse_time(status.get("completedAt"))
    if ttl is None or finished is None:
        return None
    return float(ttl) - (now - finished).total_seconds()
