"""Every condition type and every reason a VideoJob's status, conditions and Events can carry, declared once.

Tools rely on these words (`kubectl wait --for=condition=Finished`, alerts on `reason=OutputBucketNotFound`), so
they are an API like the spec: the operator, the transcoder and the docs take them from here. docs/api.md lists
them (generated), and tests/unit/test_api_conditions.py fails when code uses a reason that is not declared here.

Conditions follow the Kubernetes API conventions (metav1.Condition, positive polarity, a list map keyed by
`type`). All six are always present:

- `Succeeded` is Unknown until the job finishes (True: it succeeded; False: it failed or was cancelled), the
  way Argo and Kueue report an outcome that is not known yet;
- `Finished` is True on any terminal phase, with the phase as its reason, so `kubectl wait --for=condition=Finished`
  returns whatever the outcome.
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    ADMITTED = "Admitted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    FINISHED = "Finished"


CONDITION_DESCRIPTIONS: dict[ConditionType, str] = {
    ConditionType.ADMITTED: "True once the operator created the Kubernetes Job (reason JobCreated); False while it "
    "waits in the queue (reason Queued) or when it finished without one.",
    ConditionType.RUNNING: "True while a transcoder pod runs (reason Running, or Retrying between attempts).",
    ConditionType.SUCCEEDED: "Unknown until the job finishes; then True when it succeeded with its artifacts, False "
    "when it failed or was cancelled (reason: the phase).",
    ConditionType.FAILED: "True when the job failed; its reason says why (see the reasons below).",
    ConditionType.CANCELLED: "True when the job was cancelled with `spec.cancel: true`.",
    ConditionType.FINISHED: "True in any terminal phase, with the phase as reason (Succeeded, Failed, Cancelled): "
    "`kubectl wait --for=condition=Finished` returns whatever the outcome.",
}


class Reason(StrEnum):
    """Machine-readable reasons (CamelCase), in `status.reason`, the conditions' reasons and Events."""

    # --- lifecycle (phases and their steps) ---
    QUEUED = "Queued"
    ADMITTED = "Admitted"
    JOB_CREATED = "JobCreated"
    STARTED = "Started"
    RUNNING = "Running"
    JOINING = "Joining"
    RETRYING = "Retrying"
    PENDING = "Pending"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    # --- waiting on configuration or capacity (Pending, then Failed after the stuck timeout) ---
    PRESET_NOT_FOUND = "PresetNotFound"
    JOB_CREATE_FAILED = "JobCreateFailed"
    NO_POD = "NoPod"
    UNSCHEDULABLE = "Unschedulable"
    CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    ERR_IMAGE_PULL = "ErrImagePull"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    INVALID_IMAGE_NAME = "InvalidImageName"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    # --- decided by the operator ---
    INVALID_SPEC = "InvalidSpec"
    JOB_DELETED = "JobDeleted"
    JOB_FAILED = "JobFailed"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    POD_FAILURE_POLICY = "PodFailurePolicy"
    OOM_KILLED = "OOMKilled"
    TRANSCODER_EXITED = "TranscoderExited"
    # --- the transcoder's exit codes, when it left no reason of its own ---
    BAD_INPUT = "BadInput"
    UNSUPPORTED = "Unsupported"
    TRANSIENT_ERROR = "TransientError"
    INTERNAL_ERROR = "InternalError"
    # --- the transcoder: the spec and its arguments ---
    NO_SPEC = "NoSpec"
    INVALID_ARGUMENTS = "InvalidArguments"
    INVALID_CONFIGURATION = "InvalidConfiguration"
    # --- the transcoder: inputs and storage ---
    INPUT_NOT_FOUND = "InputNotFound"
    INPUT_TOO_LARGE = "InputTooLarge"
    INPUT_TOO_LONG = "InputTooLong"
    INPUT_CHANGED = "InputChanged"
    INPUT_TRUNCATED = "InputTruncated"
    INPUT_UNAVAILABLE = "InputUnavailable"
    INPUT_TLS = "InputTLS"
    OUTPUT_BUCKET_NOT_FOUND = "OutputBucketNotFound"
    OUTPUT_EXISTS = "OutputExists"
    STORAGE_ACCESS_DENIED = "StorageAccessDenied"
    STORAGE_UNAVAILABLE = "StorageUnavailable"
    # --- the transcoder: media and FFmpeg ---
    UNREADABLE_MEDIA = "UnreadableMedia"
    UNSUPPORTED_CONTAINER = "UnsupportedContainer"
    CODEC_NOT_SUPPORTED_BY_CONTAINER = "CodecNotSupportedByContainer"
    CODEC_NOT_SUPPORTED_BY_NVENC = "CodecNotSupportedByNvenc"
    NVENC_UNAVAILABLE = "NvencUnavailable"
    NO_VIDEO = "NoVideo"
    NO_AUDIO = "NoAudio"
    NO_VIDEO_FRAMES = "NoVideoFrames"
    NO_THUMBNAIL = "NoThumbnail"
    BAD_TRIM = "BadTrim"
    BAD_OFFSET = "BadOffset"
    BAD_TIMING = "BadTiming"
    BAD_SUBTITLES = "BadSubtitles"
    NOT_CHUNKABLE = "NotChunkable"
    SEGMENT_MISSING = "SegmentMissing"
    UNKNOWN_MODEL = "UnknownModel"
    UNSUPPORTED_LANGUAGE = "UnsupportedLanguage"
    FFMPEG_FAILED = "FFmpegFailed"
    FFMPEG_KILLED = "FFmpegKilled"
    FFMPEG_MISSING = "FFmpegMissing"
    TERMINATED = "Terminated"
    # --- Events about artifacts and notifications ---
    ARTIFACTS_DELETED = "ArtifactsDeleted"
    ARTIFACT_DELETION_FAILED = "ArtifactDeletionFailed"
    NOTIFICATION_DELIVERED = "NotificationDelivered"
    NOTIFICATION_FAILED = "NotificationFailed"
    NOTIFICATION_REFUSED = "NotificationRefused"
    # --- Events about the operator itself ---
    RECONCILE_ERROR = "ReconcileError"
    STATUS_CORRECTED = "StatusCorrected"


REASON_DESCRIPTIONS: dict[Reason, str] = {
    Reason.QUEUED: "Waiting in the admission queue (`status.queuePosition` says where).",
    Reason.ADMITTED: "The Job exists; its pod is not running yet.",
    Reason.JOB_CREATED: "Admitted condition: the operator created the Job.",
    Reason.STARTED: "Event: the first attempt's pod started.",
    Reason.RUNNING: "A transcoder pod is running.",
    Reason.JOINING: "A chunked job's segments are encoded; its join Job puts them together with the sound.",
    Reason.RETRYING: "An attempt failed with a transient error; the Job starts another pod.",
    Reason.PENDING: "Condition reason while the job has not started.",
    Reason.SUCCEEDED: "Finished with its artifacts.",
    Reason.FAILED: "Finished without artifacts (the status reason says why).",
    Reason.CANCELLED: "Stopped by `spec.cancel: true`.",
    Reason.PRESET_NOT_FOUND: "Waiting, not queued: no VideoJobPreset (in its namespace) or ClusterVideoJobPreset "
    "has the name `spec.output.preset` gives; it joins the queue when one is created (no stuck timeout).",
    Reason.JOB_CREATE_FAILED: "The API server refused the Job for now (e.g. a ResourceQuota); retried.",
    Reason.NO_POD: "The Job controller has made no pod for the Job yet (see `kubectl describe job`).",
    Reason.UNSCHEDULABLE: "The scheduler cannot place the pod yet (e.g. no free GPU).",
    Reason.CREATE_CONTAINER_CONFIG_ERROR: "The pod cannot start: a missing Secret or key (its credentials).",
    Reason.ERR_IMAGE_PULL: "The transcoder image cannot be pulled.",
    Reason.IMAGE_PULL_BACK_OFF: "The transcoder image cannot be pulled (backing off).",
    Reason.INVALID_IMAGE_NAME: "The transcoder image name is invalid.",
    Reason.CRASH_LOOP_BACK_OFF: "The transcoder container keeps crashing at start.",
    Reason.INVALID_SPEC: "The spec cannot run (refused by the operator's or the transcoder's validation).",
    Reason.JOB_DELETED: "Its Job was deleted before it finished.",
    Reason.JOB_FAILED: "The Job failed without a more precise reason.",
    Reason.DEADLINE_EXCEEDED: "The run took longer than activeDeadlineSeconds.",
    Reason.BACKOFF_LIMIT_EXCEEDED: "Every retry failed (the Job's backoffLimit).",
    Reason.POD_FAILURE_POLICY: "The Job's pod failure policy failed it (a bad-input or unsupported exit).",
    Reason.OOM_KILLED: "The transcoder ran out of memory.",
    Reason.TRANSCODER_EXITED: "The transcoder exited with an unexpected code and left no reason.",
    Reason.BAD_INPUT: "Exit 65: the input or the spec cannot work; not retried.",
    Reason.UNSUPPORTED: "Exit 69: the node cannot do what was asked; not retried.",
    Reason.TRANSIENT_ERROR: "Exit 75: worth retrying (network, storage).",
    Reason.INTERNAL_ERROR: "Exit 70: a bug in the transcoder; retried.",
    Reason.NO_SPEC: "The transcoder was started without a spec.",
    Reason.INVALID_ARGUMENTS: "`videojob-transcode` was given invalid arguments.",
    Reason.INVALID_CONFIGURATION: "The transcoder's environment (operator settings) makes no sense.",
    Reason.INPUT_NOT_FOUND: "An input does not exist (S3 object or HTTP 404).",
    Reason.INPUT_TOO_LARGE: "An input is over the byte limit.",
    Reason.INPUT_TOO_LONG: "An input is over the duration limit.",
    Reason.INPUT_CHANGED: "An input changed while it was read; retried.",
    Reason.INPUT_TRUNCATED: "An input download was cut short; retried.",
    Reason.INPUT_UNAVAILABLE: "An input's server failed or could not be reached; retried.",
    Reason.INPUT_TLS: "An input's TLS certificate is not trusted.",
    Reason.OUTPUT_BUCKET_NOT_FOUND: "The output bucket does not exist (checked before any transcoding).",
    Reason.OUTPUT_EXISTS: "An output object exists that this VideoJob did not write (`output.overwrite` is not set).",
    Reason.STORAGE_ACCESS_DENIED: "The S3 credentials may not read an input or write the output.",
    Reason.STORAGE_UNAVAILABLE: "S3 failed or could not be reached; retried.",
    Reason.UNREADABLE_MEDIA: "An input is not media FFmpeg can read.",
    Reason.UNSUPPORTED_CONTAINER: "An input's container format is not one of those accepted.",
    Reason.CODEC_NOT_SUPPORTED_BY_CONTAINER: "The output container cannot hold a stream of this job.",
    Reason.CODEC_NOT_SUPPORTED_BY_NVENC: "NVENC has no encoder for the output codec.",
    Reason.NVENC_UNAVAILABLE: "NVENC cannot start on the node (no GPU or encoder).",
    Reason.NO_VIDEO: "An operation needs a video stream the input does not have.",
    Reason.NO_AUDIO: "An operation needs an audio stream the input does not have.",
    Reason.NO_VIDEO_FRAMES: "The result has no video frames (e.g. trims cut everything).",
    Reason.NO_THUMBNAIL: "The result has no frame where the thumbnail was asked for.",
    Reason.BAD_TRIM: "A trim starts after the end of its input.",
    Reason.BAD_OFFSET: "An audio offset lies beyond the end of the video.",
    Reason.BAD_TIMING: "An overlay starts after the end of the video.",
    Reason.BAD_SUBTITLES: "A subtitle file cannot be read.",
    Reason.NOT_CHUNKABLE: "`spec.parallelism` asks for segments this job cannot be split into (the message says why).",
    Reason.SEGMENT_MISSING: "The join cannot read a segment the Indexed Job stored; retried.",
    Reason.UNKNOWN_MODEL: "The speech-to-text model is not configured.",
    Reason.UNSUPPORTED_LANGUAGE: "The speech-to-text model does not know the language.",
    Reason.FFMPEG_FAILED: "FFmpeg refused the media or the options.",
    Reason.FFMPEG_KILLED: "FFmpeg was killed (e.g. out of memory); retried.",
    Reason.FFMPEG_MISSING: "The transcoder image has no FFmpeg.",
    Reason.TERMINATED: "The transcoder was told to stop (cancelled or evicted).",
    Reason.ARTIFACTS_DELETED: "Event: the artifacts were deleted (artifactReclaimPolicy: Delete).",
    Reason.ARTIFACT_DELETION_FAILED: "Event: the operator gave up deleting the artifacts.",
    Reason.NOTIFICATION_DELIVERED: "Event: a webhook received a notification (`status.notifications`).",
    Reason.NOTIFICATION_FAILED: "Event: a webhook kept failing; the operator gave up on that notification.",
    Reason.NOTIFICATION_REFUSED: "Event: a webhook's URL is refused by the operator's policy (scheme or address).",
    Reason.RECONCILE_ERROR: "Event (and `status.message`): the operator cannot process this VideoJob (a status or "
    "spec its code cannot handle); it skips it and goes on with the others.",
    Reason.STATUS_CORRECTED: "Event: the status said the job had finished, which its Job does not bear out (a status "
    "written by someone other than the operator); the operator put back the phase its Job and pods show.",
}
