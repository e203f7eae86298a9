"""The contract between the operator and the transcoder container it starts.

The operator builds a Job whose container gets these environment variables; the transcoder reads them, and
reports back through what the kubelet records about its own pod, never through the API: progress as lines in its
log (`progress_line`, read back with `parse_progress`), the outcome as its exit code and a JSON `TranscodeResult`
written to the termination-message path. The transcoder holds no API token at all, so nothing a transcode does
(a hostile input that took FFmpeg over included) can write to any object; and the operator reads both only from
pods it proved it owns (controller references), so they can tell nothing about another VideoJob.
Both sides import this module, so a name changes in one place.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from videojob.api.conditions import Reason
from videojob.api.models import Artifact, Container, Subtitles, VideoJobSpec, _Model

# --- the spec, as a file in the transcoder container --------------------------------------------------------------
# The operator puts `spec_json(spec)` in an annotation of the Job's pod template, and the kubelet writes that
# annotation to SPEC_FILE (a downwardAPI volume): no environment variable, whose size Linux limits to 128 KiB, and
# no object of its own. Annotations of one object may hold 256 KiB together; MAX_SPEC_BYTES leaves room for others,
# and the CRD's size rule (models.MAX_SPEC_TEXT_BYTES) keeps every accepted spec under it.
SPEC_ANNOTATION = "videojob.dev/spec"
SPEC_DIR = "/etc/videojob"
SPEC_FILE = f"{SPEC_DIR}/spec.json"
MAX_SPEC_BYTES = 224 * 1024
# The parts of the spec the transcoder reads; the rest (priority, TTL, credentials, ...) is the operator's.
TRANSCODER_SPEC_FIELDS = frozenset({"inputs", "operations", "output", "hardware", "retries", "active_deadline_seconds"})


def spec_json(spec: VideoJobSpec) -> str:
    """The transcoder's copy of a validated spec: its TRANSCODER_SPEC_FIELDS in wire form (defaults filled in),
    compact JSON, non-ASCII left as UTF-8 (escaped, an emoji takes 12 bytes instead of 4)."""
    wire = spec.model_dump(mode="json", by_alias=True, exclude_none=True, include=set(TRANSCODER_SPEC_FIELDS))
    return json.dumps(wire, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# --- environment of the transcoder container -------------------------------------------------------------------
ENV_SPEC = "VIDEOJOB_SPEC"  # the VideoJob spec as JSON (wire form, camelCase), for running it by hand
ENV_SPEC_FILE = "VIDEOJOB_SPEC_FILE"  # a path to that JSON: SPEC_FILE in a pod
ENV_NAME = "VIDEOJOB_NAME"  # the VideoJob's name, namespace and uid: the identity its outputs carry
ENV_NAMESPACE = "VIDEOJOB_NAMESPACE"
ENV_UID = "VIDEOJOB_UID"
ENV_HARDWARE = "VIDEOJOB_HARDWARE"  # "cpu" or "nvidia": what the operator chose, never "auto"
# What the user asked for in spec.hardware: "cpu", "nvidia" or "auto". With "auto" the transcoder falls back to CPU
# encoding when the node it was given cannot start NVENC; with "nvidia" that stays a NvencUnavailable failure.
# Unset (an older operator) means the same as VIDEOJOB_HARDWARE, i.e. no fallback.
ENV_HARDWARE_REQUESTED = "VIDEOJOB_HARDWARE_REQUESTED"
ENV_WORKDIR = "VIDEOJOB_WORKDIR"  # scratch space (an emptyDir); the only place the transcoder writes files
ENV_RESULT_PATH = "VIDEOJOB_RESULT_PATH"  # where to write the TranscodeResult (the termination-message path)
ENV_PROGRESS = "VIDEOJOB_PROGRESS"  # "lines" (progress_line on stdout, for the operator), "log" (people), "none"
ENV_PROGRESS_INTERVAL = "VIDEOJOB_PROGRESS_INTERVAL"  # seconds between progress reports
ENV_ALLOW_HTTP = "VIDEOJOB_ALLOW_HTTP"  # "true" lets inputs use http://
ENV_ALLOWED_HOSTS = "VIDEOJOB_ALLOWED_HOSTS"  # comma-separated hosts/.suffixes for http(s) inputs; empty = any public
ENV_ALLOW_PRIVATE_NETWORKS = "VIDEOJOB_ALLOW_PRIVATE_NETWORKS"  # "true" allows loopback/private/link-local hosts
ENV_MAX_INPUT_BYTES = "VIDEOJOB_MAX_INPUT_BYTES"
ENV_MAX_INPUT_SECONDS = "VIDEOJOB_MAX_INPUT_SECONDS"
ENV_STT_MODEL_DIRS = "VIDEOJOB_STT_MODEL_DIRS"  # JSON object: model name -> directory of a CTranslate2 Whisper model
# Chunked encoding (spec.parallelism): the pods of the segments' Indexed Job run one segment each (Kubernetes sets
# JOB_COMPLETION_INDEX), then one pod joins them. Unset VIDEOJOB_PART: the whole job in one pod.
ENV_PART = "VIDEOJOB_PART"  # "segment" or "join"
ENV_SEGMENTS = "VIDEOJOB_SEGMENTS"  # how many segments the job is split into at most
ENV_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"
PART_SEGMENT = "segment"
PART_JOIN = "join"
ENV_S3_ENDPOINT = "S3_ENDPOINT_URL"  # plus the standard AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION

DEFAULT_RESULT_PATH = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT = 4096  # bytes the kubelet keeps of a termination message

# --- progress, in the container's log ----------------------------------------------------------------------------
PROGRESS_PREFIX = "videojob-progress: "
PROGRESS_TAIL_LINES = 4  # the operator reads this many lines from the end of the log ...
PROGRESS_TAIL_BYTES = 2048  # ... and at most this many bytes of them


def progress_line(percent: float) -> str:
    """The line the transcoder prints (on stdout) to report `percent` done, e.g. "videojob-progress: 42.5"."""
    return f"{PROGRESS_PREFIX}{min(max(percent, 0.0), 100.0):.1f}"


def parse_progress(log_tail: str) -> float | None:
    """The last progress a log tail reports, or None. Whatever ran in the pod wrote the log: anything that is not a
    progress line, or not a finite number from 0 to 100, is ignored."""
    for line in reversed(log_tail.splitlines()):
        text = line.strip()
        if not text.startswith(PROGRESS_PREFIX):
            continue
        try:
            value = float(text[len(PROGRESS_PREFIX) :])
        except ValueError:
            continue
        if 0.0 <= value <= 100.0:  # NaN and infinities fail both comparisons
            return round(value, 1)
    return None


class ExitCode(IntEnum):
    """How the transcoder ends. The operator's podFailurePolicy turns BAD_INPUT and UNSUPPORTED into FailJob
    (retrying cannot help); anything else non-zero is retried up to `spec.retries` times."""

    OK = 0
    TRANSIENT = 75  # EX_TEMPFAIL: network, storage, a killed process: worth retrying
    BAD_INPUT = 65  # EX_DATAERR: missing or unreadable input, spec the media cannot satisfy
    UNSUPPORTED = 69  # EX_UNAVAILABLE: e.g. NVENC requested where no encoder is present
    INTERNAL = 70  # EX_SOFTWARE: a bug; retried like a transient failure


NOT_RETRIED = (ExitCode.BAD_INPUT, ExitCode.UNSUPPORTED)


class TranscodeResult(_Model):
    """What the transcoder leaves in its termination message (compact JSON, under 4 KiB)."""

    ok: bool
    reason: Annotated[str, StringConstraints(max_length=64)] = Reason.SUCCEEDED.value
    message: Annotated[str, StringConstraints(max_length=1024)] = ""
    artifacts: list[Artifact] = Field(default_factory=list)
    bytes_in: int = Field(default=0, ge=0)
    bytes_out: int = Field(default=0, ge=0)
    seconds: float = Field(default=0, ge=0)
    # The encoder hardware really used (cpu after an `auto` fallback on a GPU node); None when unknown (a failure
    # before planning, or an older transcoder).
    hardware: Literal["cpu", "nvidia"] | None = None
    # A failed job deletes what it wrote; the objects it could not delete (they carry its uid in their metadata).
    leftovers: list[Annotated[str, StringConstraints(max_length=2048)]] = Field(default_factory=list, max_length=16)


# --- the objects a job writes ----------------------------------------------------------------------------------


def output_names(spec: VideoJobSpec) -> list[str]:
    """The file names a job writes under `spec.output.uri`, in the order it writes them: the main file
    (`<name>.<container>`), the thumbnail (`<name>.jpg`), then each emitted subtitle file (`<name>.<fmt>`, a second
    one of a format `<name>-2.<fmt>`). The transcoder writes nothing else, so the operator derives from the spec
    alone (never from a status) which objects a VideoJob may own: what it accepts as artifacts, and what it may
    delete.

    A spec whose output still names a preset (the operator's view of a VideoJob: the preset is merged into the Job,
    not into the VideoJob) may write the main file in any container and a thumbnail: all of those names count, so
    they need nothing but the spec (a status could be written by anyone who may patch it)."""
    out = spec.output
    if out.preset is not None:
        names = [f"{out.name}.{container}" for container in Container] + [f"{out.name}.jpg"]
    else:
        names = [f"{out.name}.{out.container}"]
        if out.thumbnail is not None:
            names.append(f"{out.name}.jpg")
    counts: dict[str, int] = {}
    for op in spec.operations:
        if isinstance(op.body, Subtitles):
            for emit in op.body.emit:
                fmt = str(emit)
                counts[fmt] = counts.get(fmt, 0) + 1
                names.append(f"{out.name}{'' if counts[fmt] == 1 else f'-{counts[fmt]}'}.{fmt}")
    return names


def output_uri(prefix: str, filename: str) -> str:
    """`filename` under the output prefix (which may or may not end with "/")."""
    return (prefix if prefix.endswith("/") else prefix + "/") + filename


def output_uris(spec: VideoJobSpec) -> list[str]:
    """`output_names` as s3:// URIs under `spec.output.uri`."""
    return [output_uri(spec.output.uri, name) for name in output_names(spec)]


# Segments of a chunked job wait for the join here: under the output prefix (the one bucket the job may write),
# in a folder of the VideoJob's own (its uid), removed by the join once the result is stored.
SEGMENTS_FOLDER = ".videojob-segments"


def segments_prefix(spec: VideoJobSpec, uid: str) -> str:
    """`s3://bucket/prefix/.videojob-segments/<uid>/`: where a chunked VideoJob's segments are kept until the join."""
    return output_uri(spec.output.uri, f"{SEGMENTS_FOLDER}/{uid}/")
