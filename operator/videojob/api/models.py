"""The VideoJob resource: spec and status as pydantic models.

This module is the contract between users, the operator and the transcoder. It imports nothing of Kopf,
Kubernetes or FFmpeg. Field names are camelCase on the wire (Kubernetes API conventions) and snake_case in
Python. Every string has a length bound and, where it can, a pattern or an enum; every number has bounds: the
CRD generated from these models (`make crds`) lets the API server refuse bad input at `kubectl apply`.

Cross-field rules live in two places that must agree: the `model_validator`s below (used by the operator and
the transcoder) and the CEL rules attached to the schema through `json_schema_extra` (used by the API server).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from videojob.api.colors import CSS_COLORS

GROUP = "videojob.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "VideoJob"
PLURAL = "videojobs"
SINGULAR = "videojob"
SHORT_NAMES = ["vj"]
CATEGORIES = ["media"]
# Output presets (presets.py): a namespaced kind and a cluster-scoped one, in the same group and version.
PRESET_KIND = "VideoJobPreset"
PRESET_PLURAL = "videojobpresets"
PRESET_SINGULAR = "videojobpreset"
PRESET_SHORT_NAMES = ["vjp"]
CLUSTER_PRESET_KIND = "ClusterVideoJobPreset"
CLUSTER_PRESET_PLURAL = "clustervideojobpresets"
CLUSTER_PRESET_SINGULAR = "clustervideojobpreset"
CLUSTER_PRESET_SHORT_NAMES = ["cvjp"]

MAX_SECONDS = 86_400.0  # a day: bound for every time offset inside a media file
MAX_INPUTS = 16
MAX_OPERATIONS = 32
MAX_PARALLELISM = 16  # segments of one job at once
CHUNKING_REFUSED = (
    "parallelism above 1 cannot be used with concat, generated subtitles, video codec copy or hardware nvidia"
)
# Bytes (UTF-8) that the free-text fields of a spec may hold together: the input URIs, the texts of text operations
# and the output URI. Everything else in the parts of a spec the transcoder reads is short and ASCII, so this bounds
# the copy the transcoder gets (runtime.spec_json, at most runtime.MAX_SPEC_BYTES), and a job the API server
# accepts can always start.
MAX_SPEC_TEXT_BYTES = 96 * 1024
# The operator names the Kubernetes Job after the VideoJob plus a suffix ("-a<attempt>-<hash>"); Job names are
# DNS labels (63 characters) whose pods add their own suffix, so the VideoJob's name is held to 52.
MAX_NAME_LENGTH = 52
# The largest integer a float64 holds exactly. The API server reads a schema's `maximum` as a float64: a bound of
# 2**63-1 overflows there and refuses every value, so no bound in the models may exceed this one.
MAX_SAFE_INTEGER = 2**53 - 1
MAX_CRF_H26X = 51  # x264/x265's scale; libvpx-vp9 and AV1 encoders go to 63


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry; `field_path` makes the API server's error name the field."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def _validations(*rules: dict[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(rules)}


# The key under which a `Matches` message travels in the JSON schema, until the CRD generator turns it into a CEL
# rule (see generate.structural).
MESSAGE_KEY = "x-videojob-message"


@dataclass(frozen=True)
class Matches:
    """A string must match `regex` (RE2 syntax, which Python's `re` reads the same way here), or be refused with
    `message`: a sentence for people (`must be s3://BUCKET/KEY ...`), never the regular expression itself.

    The models raise the message (pydantic's error location names the field); the CRD gets a CEL rule
    `self.matches(regex)` with the field's name and this message instead of an OpenAPI `pattern`, whose refusal
    would print the whole expression.
    """

    regex: str
    message: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        compiled = re.compile(self.regex)
        message = self.message

        def check(value: str) -> str:
            if not compiled.search(value):
                raise PydanticCustomError("string_pattern_mismatch", message)
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        out = handler.resolve_ref_schema(out)
        out["pattern"] = self.regex
        out[MESSAGE_KEY] = self.message
        return out


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it appears in the Kubernetes API (camelCase, unset optionals omitted)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# ---------------------------------------------------------------------------------------------------------------
# Scalars
# ---------------------------------------------------------------------------------------------------------------

# DNS-1123 label: input names are referenced by operations and end up in file names.
InputName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63),
    Matches(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "must be lower-case letters, digits and dashes (a DNS label)"),
]

# s3://bucket/key or http(s)://host/path. Bucket names follow S3's rules; keys may not start with "/" nor hold a
# ".." segment; no whitespace or control characters anywhere. Whether http:// and which hosts are allowed is the
# operator's configuration, checked at admission (not expressible in the CRD).
_CHAR = r"[^/\s\x00-\x1f\x7f]"
# A key segment that is neither empty, "." nor "..": written without look-around, which neither the API
# server's regexes (RE2) nor pydantic's support.
_SEGMENT = rf"([^./\s\x00-\x1f\x7f]{_CHAR}*|\.[^./\s\x00-\x1f\x7f]{_CHAR}*|\.\.{_CHAR}+)"
_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
_S3_URI = rf"s3://{_BUCKET}/{_SEGMENT}(/{_SEGMENT})*"
_HTTP_URI = r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s\x00-\x1f\x7f]*)?"
InputURI = Annotated[
    str,
    StringConstraints(min_length=6, max_length=2048),
    Matches(
        rf"^({_S3_URI}|{_HTTP_URI})$",
        "must be s3://BUCKET/KEY or https://HOST/PATH (no spaces, no empty, '.' or '..' key segments)",
    ),
]

# Output prefix: an S3 "folder"; artifacts are written under it.
_S3_PREFIX = rf"s3://{_BUCKET}(/({_SEGMENT}/)*({_SEGMENT})?)?"
OutputURI = Annotated[
    str,
    StringConstraints(min_length=6, max_length=1024),
    Matches(rf"^{_S3_PREFIX}$", "must be s3://BUCKET/PREFIX/ (no spaces, no empty, '.' or '..' segments)"),
]

# A file name without directories; used for artifact names.
FileStem = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    Matches(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$", "must be a file name of letters, digits, '.', '_' and '-'"),
]

# A colour: a name FFmpeg knows (colors.CSS_COLORS, any case) or #RRGGBB / #RRGGBBAA.
COLOR_PATTERN = rf"^((?i:{'|'.join(sorted(CSS_COLORS))})|#[0-9a-fA-F]{{6}}([0-9a-fA-F]{{2}})?)$"
Color = Annotated[
    str,
    StringConstraints(min_length=3, max_length=32),
    Matches(COLOR_PATTERN, "must be a CSS colour name (white, black, red, ...) or #RRGGBB or #RRGGBBAA"),
]

# A bitrate such as 128k or 4M (bits per second).
Bitrate = Annotated[
    str,
    StringConstraints(min_length=2, max_length=8),
    Matches(r"^[1-9][0-9]{0,5}[kM]$", "must be a number with k or M, e.g. 128k or 4M"),
]

# A font family name (fontconfig). Letters, digits, spaces, dashes and underscores only: never a path.
FontFamily = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    Matches(r"^[A-Za-z0-9][A-Za-z0-9 _-]*$", "must be a font family name of letters, digits, spaces, '_' and '-'"),
]

Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
Duration = Annotated[float, Field(gt=0, le=MAX_SECONDS)]

ResourceName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=253),
    Matches(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "must be a Kubernetes object name (lower case, digits, '-', '.')"),
]

# A preset's name: a Kubernetes object name (DNS subdomain).
PresetName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=253),
    Matches(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "must be a Kubernetes object name (lower case, digits, '-', '.')"),
]

_RESOLUTION = re.compile(r"^([0-9]{2,4})x([0-9]{2,4})$")
# An even number of pixels from 16 to 7680, as a regex (RE2 and pydantic alike), so the API server checks it too.
_EVEN_16_7680 = r"(1[68]|[2-9][02468]|[1-9][0-9][02468]|[1-6][0-9]{2}[02468]|7[0-5][0-9][02468]|76[0-7][02468]|7680)"
Resolution = Annotated[
    str,
    StringConstraints(min_length=5, max_length=9),
    Matches(
        rf"^{_EVEN_16_7680}x{_EVEN_16_7680}$", "must be WIDTHxHEIGHT in even pixels from 16 to 7680, e.g. 1280x720"
    ),
]


class Hardware(StrEnum):
    CPU = "cpu"
    NVIDIA = "nvidia"
    AUTO = "auto"


class Position(StrEnum):
    TOP_LEFT = "top-left"
    TOP_CENTER = "top-center"
    TOP_RIGHT = "top-right"
    CENTER_LEFT = "center-left"
    CENTER = "center"
    CENTER_RIGHT = "center-right"
    BOTTOM_LEFT = "bottom-left"
    BOTTOM_CENTER = "bottom-center"
    BOTTOM_RIGHT = "bottom-right"


class Corner(StrEnum):
    TOP_LEFT = "top-left"
    TOP_RIGHT = "top-right"
    BOTTOM_LEFT = "bottom-left"
    BOTTOM_RIGHT = "bottom-right"


class Container(StrEnum):
    MP4 = "mp4"
    MKV = "mkv"
    WEBM = "webm"
    MOV = "mov"


class VideoCodec(StrEnum):
    H264 = "h264"
    H265 = "h265"
    VP9 = "vp9"
    AV1 = "av1"
    COPY = "copy"


class AudioCodec(StrEnum):
    AAC = "aac"
    MP3 = "mp3"
    OPUS = "opus"
    COPY = "copy"


class Preset(StrEnum):
    """x264-style speed presets; the transcoder maps them to each encoder's own scale."""

    ULTRAFAST = "ultrafast"
    SUPERFAST = "superfast"
    VERYFAST = "veryfast"
    FASTER = "faster"
    FAST = "fast"
    MEDIUM = "medium"
    SLOW = "slow"
    SLOWER = "slower"
    VERYSLOW = "veryslow"


class AudioMode(StrEnum):
    MIX = "mix"
    REPLACE = "replace"


class SubtitleFormat(StrEnum):
    SRT = "srt"
    VTT = "vtt"


class SpeechEngine(StrEnum):
    WHISPER = "whisper"


class ArtifactReclaimPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


# ---------------------------------------------------------------------------------------------------------------
# Spec
# ---------------------------------------------------------------------------------------------------------------


class Trim(_Model):
    """Use only part of an input: from `start` seconds, for `duration` seconds (to the end when unset)."""

    start: Seconds = Field(default=0, description="Seconds into the input where the used part starts.")
    duration: Duration | None = Field(default=None, description="Seconds to use (to the end of the input when unset).")


class Input(_Model):
    """A named source file. Operations refer to inputs by name."""

    name: InputName = Field(description="Name operations use to refer to this input (DNS label).")
    uri: InputURI = Field(description="s3://bucket/key or https://host/path (http:// only if the operator allows it).")
    trim: Trim | None = Field(default=None, description="Use only part of this input.")


class Concat(_Model):
    """Join inputs one after another. Sizes, frame rates and sample rates are normalised to the first one's.

    Must be the first operation: its result becomes the stream the following operations work on.
    """

    inputs: list[InputName] = Field(min_length=2, max_length=MAX_INPUTS, description="Inputs to join, in order.")


class Audio(_Model):
    """Put an audio input under the video: replace the original sound or mix with it."""

    input: InputName = Field(description="The audio input (MP3, AAC, WAV, or the audio of any media input).")
    mode: AudioMode = Field(default=AudioMode.MIX, description="replace: drop the original sound; mix: add to it.")
    offset: Seconds = Field(default=0, description="Seconds into the video where the added audio starts.")
    volume: float = Field(default=1.0, ge=0, le=10, description="Gain of the added audio (1.0 = unchanged).")
    fade_in: Annotated[float, Field(ge=0, le=600)] = Field(default=0, description="Fade-in seconds.")
    fade_out: Annotated[float, Field(ge=0, le=600)] = Field(default=0, description="Fade-out seconds at its end.")


class Text(_Model):
    """Draw text over the video. The text is rendered literally; it never becomes part of a filter graph."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            cel("!has(self.end) || self.end > self.start", "end must be greater than start", ".end"),
        )
    )

    text: Annotated[
        str,
        StringConstraints(min_length=1, max_length=1000),
        Matches(
            r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$",
            "may hold no control characters other than tab, newline and carriage return",
        ),
    ] = Field(description="The text, rendered literally (UTF-8).")
    font: FontFamily = Field(default="DejaVu Sans", description="Font family (fontconfig name).")
    size: int = Field(default=36, ge=6, le=400, description="Font size in pixels.")
    color: Color = Field(default="white", description="Colour name or #RRGGBB[AA].")
    position: Position = Field(default=Position.BOTTOM_CENTER, description="Anchor on the frame.")
    offset_x: int = Field(default=0, ge=-4096, le=4096, description="Horizontal shift from the anchor, pixels.")
    offset_y: int = Field(default=0, ge=-4096, le=4096, description="Vertical shift from the anchor, pixels.")
    box: bool = Field(default=False, description="Draw a filled box behind the text.")
    box_color: Color = Field(default="#00000099", description="Box colour.")
    border: int = Field(default=0, ge=0, le=20, description="Outline width around glyphs, pixels.")
    border_color: Color = Field(default="black", description="Outline colour.")
    start: Seconds = Field(default=0, description="Seconds when the text appears.")
    end: Seconds | None = Field(default=None, description="Seconds when it disappears (the end when unset).")

    @model_validator(mode="after")
    def _end_after_start(self) -> Text:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be greater than start")
        return self


class SubtitleStyle(_Model):
    """How burned-in subtitles look (overrides the file's own style)."""

    size: int | None = Field(default=None, ge=6, le=200, description="Font size.")
    color: Color | None = Field(default=None, description="Text colour.")
    outline: int | None = Field(default=None, ge=0, le=10, description="Outline width.")
    outline_color: Color | None = Field(default=None, description="Outline colour.")
    font: FontFamily | None = Field(default=None, description="Font family.")


class GenerateSubtitles(_Model):
    """Transcribe the speech of the current stream into subtitles."""

    language: Annotated[
        str, StringConstraints(max_length=4), Matches(r"^([a-z]{2,3}|auto)$", "must be an ISO 639 code or auto")
    ] = Field(default="auto", description="ISO 639-1/3 code of the spoken language, or auto to detect it.")
    engine: SpeechEngine = Field(default=SpeechEngine.WHISPER, description="Speech-to-text engine.")
    model: Annotated[
        str,
        StringConstraints(min_length=1, max_length=63),
        Matches(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "must be a model name (lower case, digits, '-', '.')"),
    ] = Field(default="bundled", description="Model name, mapped to a model directory by the operator's settings.")


class Subtitles(_Model):
    """Burn in subtitles from an input (SRT, VTT, ASS/SSA) or generated from speech; optionally emit files."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            cel("has(self.input) != has(self.generate)", "exactly one of input or generate must be set"),
            cel("self.burn || size(self.emit) > 0", "subtitles must be burned in or emitted (or both)"),
        )
    )

    input: InputName | None = Field(default=None, description="A subtitle input (SRT, VTT, ASS/SSA).")
    generate: GenerateSubtitles | None = Field(default=None, description="Generate subtitles from speech.")
    burn: bool = Field(default=True, description="Render the subtitles into the video frames.")
    emit: list[SubtitleFormat] = Field(
        default_factory=list,
        max_length=2,
        description="Also store the subtitles as these files (srt, vtt).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    style: SubtitleStyle | None = Field(default=None, description="Style for burned-in subtitles.")

    @model_validator(mode="after")
    def _one_source(self) -> Subtitles:
        if (self.input is None) == (self.generate is None):
            raise ValueError("exactly one of input or generate must be set")
        if not self.burn and not self.emit:
            raise ValueError("subtitles must be burned in or emitted (or both)")
        if len(set(self.emit)) != len(self.emit):
            raise ValueError("emit formats must be unique")
        return self


class PictureInPicture(_Model):
    """Overlay another video, scaled down, in a corner of the frame."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            cel("!has(self.end) || self.end > self.start", "end must be greater than start", ".end"),
        )
    )

    input: InputName = Field(description="The video to overlay.")
    position: Corner = Field(default=Corner.TOP_RIGHT, description="Corner of the frame.")
    scale: float = Field(default=0.25, ge=0.05, le=1.0, description="Width of the overlay relative to the frame.")
    margin: int = Field(default=16, ge=0, le=1000, description="Distance from the frame edges, pixels.")
    start: Seconds = Field(default=0, description="Seconds when the overlay appears.")
    end: Seconds | None = Field(default=None, description="Seconds when it disappears (the end when unset).")

    @model_validator(mode="after")
    def _end_after_start(self) -> PictureInPicture:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be greater than start")
        return self


OPERATION_KINDS = ("concat", "audio", "text", "subtitles", "pip")
# Operations that change the sound: a `copy` audio codec cannot carry them out.
AUDIO_OPERATIONS = ("concat", "audio")


class Operation(_Model):
    """One step of the chain: exactly one of its fields is set."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    concat: Concat | None = None
    audio: Audio | None = None
    text: Text | None = None
    subtitles: Subtitles | None = None
    pip: PictureInPicture | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Operation:
        set_fields = [k for k in OPERATION_KINDS if getattr(self, k) is not None]
        if len(set_fields) != 1:
            raise ValueError(f"an operation sets exactly one of {', '.join(OPERATION_KINDS)}; got {set_fields}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in OPERATION_KINDS if getattr(self, k) is not None)

    @property
    def body(self) -> Concat | Audio | Text | Subtitles | PictureInPicture:
        body: Concat | Audio | Text | Subtitles | PictureInPicture = getattr(self, self.kind)
        return body

    def input_refs(self) -> list[str]:
        """Names of the inputs this operation reads."""
        body = self.body
        if isinstance(body, Concat):
            return list(body.inputs)
        ref = getattr(body, "input", None)
        return [ref] if ref else []


# The encoding fields a preset may set (`OutputSettings`). The CRDs give them no default: the API server would fill
# it in, and the operator could no longer tell a field the VideoJob sets (which overrides its preset's) from one it
# leaves to the preset. The models keep their defaults, which apply after the merge (presets.merge_output); the CRD
# generator drops the default of every field marked so.
PRESETTABLE: dict[str, Any] = {"x-videojob-presettable": True}


class VideoOutput(_Model):
    model_config = ConfigDict(
        json_schema_extra=_validations(
            cel("!(has(self.crf) && has(self.bitrate))", "crf and bitrate are mutually exclusive", ".crf"),
            cel(
                "!has(self.codec) || self.codec != 'copy'"
                " || (!has(self.crf) && !has(self.bitrate) && !has(self.resolution) && !has(self.fps))",
                "codec copy cannot be combined with crf, bitrate, resolution or fps",
                ".codec",
            ),
        )
    )

    codec: VideoCodec = Field(
        default=VideoCodec.H264,
        description="h264, h265, vp9, av1, or copy (no re-encode); h264 when neither the job nor its preset sets it.",
        json_schema_extra=PRESETTABLE,
    )
    crf: int | None = Field(
        default=None, ge=0, le=63, description="Constant quality, lower is better: h264/h265 0-51, vp9/av1 0-63."
    )
    bitrate: Bitrate | None = Field(default=None, description="Target bitrate, e.g. 4M. Exclusive with crf.")
    preset: Preset = Field(
        default=Preset.MEDIUM,
        description="Speed/quality trade-off; medium when neither the job nor its preset sets it.",
        json_schema_extra=PRESETTABLE,
    )
    resolution: Resolution | None = Field(
        default=None, description="WIDTHxHEIGHT, e.g. 1280x720 (even numbers, 16 to 7680)."
    )
    fps: float | None = Field(default=None, gt=0, le=240, description="Output frame rate.")

    @model_validator(mode="after")
    def _consistent(self) -> VideoOutput:
        if self.crf is not None and self.bitrate is not None:
            raise ValueError("crf and bitrate are mutually exclusive")
        encoding = (self.crf, self.bitrate, self.resolution, self.fps)
        if self.codec == VideoCodec.COPY and any(v is not None for v in encoding):
            raise ValueError("codec copy cannot be combined with crf, bitrate, resolution or fps")
        if self.resolution is not None:
            width, height = self.size  # type: ignore[misc]
            if not (16 <= width <= 7680 and 16 <= height <= 7680) or width % 2 or height % 2:
                raise ValueError("resolution must be even numbers between 16 and 7680")
        return self

    @property
    def size(self) -> tuple[int, int] | None:
        if self.resolution is None:
            return None
        match = _RESOLUTION.match(self.resolution)
        assert match is not None
        return int(match.group(1)), int(match.group(2))


OPUS_SAMPLE_RATES = (8000, 16000, 24000, 48000)  # of the rates offered, those libopus encodes


class AudioOutput(_Model):
    model_config = ConfigDict(
        json_schema_extra=_validations(
            cel(
                "!has(self.codec) || self.codec != 'copy'"
                " || (!has(self.bitrate) && !has(self.channels) && !has(self.sampleRate))",
                "codec copy cannot be combined with bitrate, channels or sampleRate",
                ".codec",
            ),
            cel(
                "!has(self.codec) || self.codec != 'opus' || !has(self.sampleRate)"
                " || self.sampleRate in [8000, 16000, 24000, 48000]",
                "codec opus supports sampleRate 8000, 16000, 24000 or 48000",
                ".sampleRate",
            ),
            cel(
                "!has(self.codec) || self.codec != 'mp3' || !has(self.channels) || self.channels <= 2",
                "codec mp3 carries at most 2 channels",
                ".channels",
            ),
        )
    )

    codec: AudioCodec = Field(
        default=AudioCodec.AAC,
        description="aac, mp3, opus, or copy (no re-encode); aac when neither the job nor its preset sets it.",
        json_schema_extra=PRESETTABLE,
    )
    bitrate: Bitrate | None = Field(default=None, description="e.g. 128k.")
    channels: int | None = Field(default=None, ge=1, le=8, description="Number of channels.")
    sample_rate: Literal[8000, 16000, 22050, 24000, 32000, 44100, 48000] | None = Field(
        default=None, description="Sample rate in Hz."
    )

    @model_validator(mode="after")
    def _consistent(self) -> AudioOutput:
        encoding = (self.bitrate, self.channels, self.sample_rate)
        if self.codec == AudioCodec.COPY and any(v is not None for v in encoding):
            raise ValueError("codec copy cannot be combined with bitrate, channels or sampleRate")
        if self.codec == AudioCodec.OPUS and self.sample_rate not in (None, *OPUS_SAMPLE_RATES):
            raise ValueError("codec opus supports sampleRate 8000, 16000, 24000 or 48000")
        if self.codec == AudioCodec.MP3 and self.channels is not None and self.channels > 2:
            raise ValueError("codec mp3 carries at most 2 channels")
        return self


class Thumbnail(_Model):
    """A JPEG still taken from the result."""

    at: Seconds = Field(default=0, description="Seconds into the result.")
    width: int | None = Field(default=None, ge=16, le=7680, description="Width in pixels (height keeps the ratio).")


def _settings_rules(unknown: str) -> dict[str, Any]:
    """The CEL rules between the fields of `OutputSettings` that depend on defaults (an omitted codec is h264, an
    omitted container mp4). `unknown` is a CEL condition under which an omitted field is not known yet (a VideoJob
    with a preset: the operator checks the merged output instead); `false` where omitted means the default."""
    video_codec = "(has(self.video) && has(self.video.codec))"
    audio_codec = "(has(self.audio) && has(self.audio.codec))"
    return _validations(
        cel(
            "!has(self.container) || self.container != 'webm'"
            f" || (({video_codec} ? self.video.codec in ['vp9', 'av1', 'copy'] : {unknown})"
            f" && ({audio_codec} ? self.audio.codec in ['opus', 'copy'] : {unknown}))",
            "container webm needs video codec vp9 or av1 and audio codec opus",
            ".container",
        ),
        cel(
            "!has(self.video) || !has(self.video.crf) || self.video.crf <= 51"
            f" || ({video_codec} ? !(self.video.codec in ['h264', 'h265']) : {unknown})",
            f"crf of h264 and h265 is 0 to {MAX_CRF_H26X} (vp9 and av1: 0 to 63)",
            ".video.crf",
        ),
    )


class OutputSettings(_Model):
    """How the output is encoded: the part of an output a preset can hold (`VideoJobPreset`)."""

    container: Container = Field(
        default=Container.MP4,
        description="mp4, mkv, webm or mov; mp4 when neither the job nor its preset sets it.",
        json_schema_extra=PRESETTABLE,
    )
    video: VideoOutput = Field(
        default_factory=VideoOutput, description="Video encoding.", json_schema_extra=PRESETTABLE
    )
    audio: AudioOutput = Field(
        default_factory=AudioOutput, description="Audio encoding.", json_schema_extra=PRESETTABLE
    )
    thumbnail: Thumbnail | None = Field(default=None, description="Also store a JPEG still.")

    def check_settings(self) -> None:
        """The rules `_settings_rules` gives the API server, on complete values (defaults filled in)."""
        if self.container == Container.WEBM and (
            self.video.codec not in (VideoCodec.VP9, VideoCodec.AV1, VideoCodec.COPY)
            or self.audio.codec not in (AudioCodec.OPUS, AudioCodec.COPY)
        ):
            raise ValueError("container webm needs video codec vp9 or av1 and audio codec opus")
        video = self.video
        if video.crf is not None and video.codec in (VideoCodec.H264, VideoCodec.H265) and video.crf > MAX_CRF_H26X:
            raise ValueError(f"video.crf of h264 and h265 is 0 to {MAX_CRF_H26X} (vp9 and av1: 0 to 63)")


class Output(OutputSettings):
    model_config = ConfigDict(json_schema_extra=_settings_rules("has(self.preset)"))

    uri: OutputURI = Field(description="s3://bucket/prefix/ under which the artifacts are written.")
    name: FileStem = Field(default="output", description="File name (without extension) of the main artifact.")
    preset: PresetName | None = Field(
        default=None,
        description="A VideoJobPreset in the VideoJob's namespace, else a ClusterVideoJobPreset, whose settings "
        "(container, video, audio, thumbnail) this output starts from; the fields set here override the preset's. "
        "Resolved once, when the job is admitted (status.preset records which); the job waits Pending while "
        "no preset of this name exists.",
    )
    overwrite: bool = Field(
        default=False,
        description="Replace objects at the output's names that another VideoJob (or anything else) wrote. By "
        "default such a job fails with OutputExists before any work, and its writes are conditional "
        "(If-None-Match), so it never silently replaces another's object.",
    )

    @model_validator(mode="after")
    def _container_codecs(self) -> Output:
        if self.preset is None:  # with a preset, the operator checks the merged output (presets.merge_output)
            self.check_settings()
        return self


class SecretReference(_Model):
    name: ResourceName = Field(description="Name of a Secret in the VideoJob's namespace.")


# ---------------------------------------------------------------------------------------------------------------
# Notifications

WEBHOOK_SECRET = "videojob-webhook"  # noqa: S105 - the default Secret's name, not a secret
WEBHOOK_SECRET_KEY = "hmacKey"  # noqa: S105 - the key's name in it
MAX_WEBHOOKS = 4
MAX_METADATA = 16

# https://host[:port][/path]: no credentials, no spaces. http:// passes here but only an operator that allows it
# (a setting) sends there; which addresses the host may resolve to is the operator's policy too.
WebhookURL = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2048),
    Matches(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s\x00-\x1f\x7f]*)?$", "must be https://HOST/PATH"),
]
METADATA_KEY = r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?$"


class NotifyEvent(StrEnum):
    """The phase changes that are announced."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class WebhookSecretRef(_Model):
    name: ResourceName = Field(default=WEBHOOK_SECRET, description="A Secret in the VideoJob's namespace.")
    key: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        default=WEBHOOK_SECRET_KEY, description="The key holding the HMAC key."
    )


class Webhook(_Model):
    """An HTTPS endpoint that receives a CloudEvent (structured JSON) on each phase change it asks for."""

    url: WebhookURL = Field(description="https://host/path the events are POSTed to.")
    events: list[NotifyEvent] = Field(
        default_factory=lambda: list(NotifyEvent),
        min_length=1,
        max_length=4,
        description="Phase changes to announce (default: all four).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    secret_ref: WebhookSecretRef = Field(
        default_factory=WebhookSecretRef,
        description="Secret whose key signs each request (HMAC-SHA256, Standard Webhooks headers).",
    )


class Notify(_Model):
    webhooks: list[Webhook] = Field(
        default_factory=list, max_length=MAX_WEBHOOKS, description="Where to announce phase changes."
    )


class VideoJobSpec(_Model):
    """What to make: inputs, a chain of operations, and the output."""

    model_config = ConfigDict(
        json_schema_extra=_validations(
            cel(
                "self.inputs.all(a, self.inputs.exists_one(b, b.name == a.name))",
                "input names must be unique",
                ".inputs",
            ),
            cel(
                "self.operations.all(o, (!has(o.concat) || o.concat.inputs.all(n, self.inputs.exists(i, i.name == n)))"
                " && (!has(o.audio) || self.inputs.exists(i, i.name == o.audio.input))"
                " && (!has(o.pip) || self.inputs.exists(i, i.name == o.pip.input))"
                " && (!has(o.subtitles) || !has(o.subtitles.input)"
                " || self.inputs.exists(i, i.name == o.subtitles.input)))",
                "every input an operation names must be declared in spec.inputs",
                ".operations",
            ),
            cel(
                "self.operations.all(o, !has(o.concat)) || (has(self.operations[0].concat)"
                " && self.operations.filter(o, has(o.concat)).size() == 1)",
                "concat must be the first operation, and appear once",
                ".operations",
            ),
            cel(
                "!has(self.output.video) || !has(self.output.video.codec) || self.output.video.codec != 'copy'"
                " || self.operations.all(o, !has(o.concat) && !has(o.text) && !has(o.pip)"
                " && (!has(o.subtitles) || !o.subtitles.burn))",
                "video codec copy cannot be used with concat, text, pip or burned-in subtitles",
                ".output.video.codec",
            ),
            cel(
                "!has(self.parallelism) || self.parallelism == 1 || (self.hardware != 'nvidia'"
                " && (!has(self.output.video) || !has(self.output.video.codec) || self.output.video.codec != 'copy')"
                " && self.operations.all(o, !has(o.concat) && (!has(o.subtitles) || !has(o.subtitles.generate))))",
                CHUNKING_REFUSED,
                ".parallelism",
            ),
            cel(
                "!has(self.output.audio) || !has(self.output.audio.codec) || self.output.audio.codec != 'copy'"
                " || self.operations.all(o, !has(o.concat) && !has(o.audio))",
                "audio codec copy cannot be used with concat or audio operations",
                ".output.audio.codec",
            ),
            # Transition rules: a submitted job's work is fixed; only priority and cancel may change.
            cel("self.inputs == oldSelf.inputs", "inputs are immutable", ".inputs"),
            cel("self.operations == oldSelf.operations", "operations are immutable", ".operations"),
            cel("self.output == oldSelf.output", "output is immutable", ".output"),
            cel("self.hardware == oldSelf.hardware", "hardware is immutable", ".hardware"),
            cel("self.retries == oldSelf.retries", "retries is immutable", ".retries"),
            cel(
                "has(self.parallelism) == has(oldSelf.parallelism)"
                " && (!has(self.parallelism) || self.parallelism == oldSelf.parallelism)",
                "parallelism is immutable",
                ".parallelism",
            ),
            cel(
                "has(self.activeDeadlineSeconds) == has(oldSelf.activeDeadlineSeconds)"
                " && (!has(self.activeDeadlineSeconds) || self.activeDeadlineSeconds == oldSelf.activeDeadlineSeconds)",
                "activeDeadlineSeconds is immutable",
                ".activeDeadlineSeconds",
            ),
            cel(
                "has(self.credentialsSecretRef) == has(oldSelf.credentialsSecretRef)"
                " && (!has(self.credentialsSecretRef) || self.credentialsSecretRef == oldSelf.credentialsSecretRef)",
                "credentialsSecretRef is immutable",
                ".credentialsSecretRef",
            ),
            cel("oldSelf.cancel == false || self.cancel == true", "cancel cannot be undone", ".cancel"),
            cel(
                "self.inputs.map(i, bytes(i.uri).size()).sum()"
                " + self.operations.map(o, has(o.text) ? bytes(o.text.text).size() : 0).sum()"
                f" + bytes(self.output.uri).size() <= {MAX_SPEC_TEXT_BYTES}",
                f"the input URIs, the texts of text operations and the output URI may hold {MAX_SPEC_TEXT_BYTES} bytes "
                "(UTF-8) together",
            ),
        )
    )

    priority: int = Field(default=5, ge=1, le=10, description="1 (highest) to 10 (lowest).")
    hardware: Hardware = Field(
        default=Hardware.AUTO, description="cpu, nvidia (NVENC on a GPU node), or auto (a GPU when one is free)."
    )
    inputs: list[Input] = Field(min_length=1, max_length=MAX_INPUTS, description="Named source files.")
    operations: list[Operation] = Field(
        default_factory=list,
        max_length=MAX_OPERATIONS,
        description="Applied in order, each on the result of the previous one. Starts from the first input.",
    )
    output: Output = Field(description="Where and how to write the result.")
    parallelism: int | None = Field(
        default=None,
        ge=1,
        le=MAX_PARALLELISM,
        description="Encode the picture in up to this many segments at once, one pod each (an Indexed Job), then "
        "join them without re-encoding and encode the sound once; unset or 1: one pod. Bounded by the operator's "
        "maxRunning; each running segment counts against it. Not with concat, generated subtitles, video codec "
        "copy or hardware nvidia.",
    )
    retries: int = Field(default=2, ge=0, le=10, description="Retries after a transient failure.")
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, le=604_800, description="Time limit for one run; the operator's default when unset."
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, le=31_536_000, description="Delete the VideoJob this long after it finishes."
    )
    cancel: bool = Field(default=False, description="Set to true to cancel; cannot be set back.")
    credentials_secret_ref: SecretReference | None = Field(
        default=None,
        description=(
            "Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for S3; the operator's default when unset."
        ),
    )
    artifact_reclaim_policy: ArtifactReclaimPolicy = Field(
        default=ArtifactReclaimPolicy.RETAIN, description="Retain or Delete the artifacts when the VideoJob is deleted."
    )
    notify: Notify | None = Field(
        default=None, description="Webhooks told of phase changes (besides the operator's cluster-wide ones)."
    )
    user_metadata: dict[str, Annotated[str, StringConstraints(max_length=256)]] | None = Field(
        default=None,
        max_length=MAX_METADATA,
        description="Your key-value pairs, echoed in every notification (like MediaConvert's userMetadata).",
        json_schema_extra={
            "maxProperties": MAX_METADATA,
            **_validations(
                cel(
                    f"self.all(k, k.matches('{METADATA_KEY}'))",
                    "userMetadata keys must be at most 128 letters, digits, '.', '_', '/' and '-'",
                )
            ),
        },
    )

    @field_validator("user_metadata")
    @classmethod
    def _metadata_keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in value or {}:
            if not re.match(METADATA_KEY, key):
                raise ValueError(
                    f"userMetadata keys must be at most 128 letters, digits, '.', '_', '/' and '-', not {key!r}"
                )
        return value

    @model_validator(mode="after")
    def _references(self) -> VideoJobSpec:
        if self.text_bytes() > MAX_SPEC_TEXT_BYTES:
            raise ValueError(
                f"the input URIs, the texts of text operations and the output URI may hold "
                f"{MAX_SPEC_TEXT_BYTES} bytes (UTF-8) together, not {self.text_bytes()}"
            )
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError("input names must be unique")
        for index, op in enumerate(self.operations):
            for ref in op.input_refs():
                if ref not in names:
                    raise ValueError(f"operations[{index}].{op.kind} names undeclared input {ref!r}")
        kinds = [op.kind for op in self.operations]
        if "concat" in kinds and (kinds[0] != "concat" or kinds.count("concat") > 1):
            raise ValueError("concat must be the first operation, and appear once")
        if self.output.video.codec == VideoCodec.COPY and any(
            k in ("concat", "text", "pip") or (k == "subtitles" and op.subtitles and op.subtitles.burn)
            for k, op in zip(kinds, self.operations, strict=True)
        ):
            raise ValueError("video codec copy cannot be used with concat, text, pip or burned-in subtitles")
        if self.output.audio.codec == AudioCodec.COPY and any(k in AUDIO_OPERATIONS for k in kinds):
            raise ValueError("audio codec copy cannot be used with concat or audio operations")
        if (self.parallelism or 1) > 1 and self.chunking_problem() is not None:
            raise ValueError(f"{CHUNKING_REFUSED}: {self.chunking_problem()}")
        return self

    def chunking_problem(self) -> str | None:
        """Why this job cannot be split into segments (None when it can, or does not ask to be)."""
        kinds = [op.kind for op in self.operations]
        if "concat" in kinds:
            return "concat: its parts have timelines of their own"
        if any(op.subtitles is not None and op.subtitles.generate is not None for op in self.operations):
            return "generated subtitles need the whole sound before any picture is drawn"
        if self.output.video.codec == VideoCodec.COPY:
            return "video codec copy: nothing is encoded to split"
        if self.hardware == Hardware.NVIDIA:
            return "hardware nvidia: segments are encoded on CPU nodes (one GPU encodes a whole job faster)"
        return None

    def text_bytes(self) -> int:
        """What the size rule counts: UTF-8 bytes of the input URIs, the text operations' texts and the output URI."""
        texts = [op.text.text for op in self.operations if op.text is not None]
        return sum(len(t.encode()) for t in [*(i.uri for i in self.inputs), *texts, self.output.uri])

    def input(self, name: str) -> Input:
        return next(i for i in self.inputs if i.name == name)


# ---------------------------------------------------------------------------------------------------------------
# Status
# ---------------------------------------------------------------------------------------------------------------


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


TERMINAL_PHASES = (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED)

Timestamp = Annotated[str, StringConstraints(max_length=64)]  # RFC 3339, as Kubernetes writes them


class Condition(_Model):
    """Kubernetes API conventions: metav1.Condition."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=316, pattern=r"^[A-Za-z][A-Za-z0-9_./-]*$")] = (
        Field(description="Condition type in CamelCase, e.g. Admitted, Running, Finished.")
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: Annotated[
        str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    ] = Field(description="Machine-readable CamelCase reason for the last transition.")
    message: Annotated[str, StringConstraints(max_length=32768)] = Field(
        default="", description="Human-readable details."
    )
    last_transition_time: Timestamp = Field(description="When the status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, ge=0, le=MAX_SAFE_INTEGER, description="metadata.generation the condition was set for."
    )


class Artifact(_Model):
    """A file the job produced, with the facts ffprobe and sha256 give about it."""

    uri: Annotated[str, StringConstraints(max_length=2048)] = Field(description="Where the file is (s3://...).")
    kind: Literal["video", "subtitles", "thumbnail"] = Field(default="video", description="What the file is.")
    size: int = Field(ge=0, le=MAX_SAFE_INTEGER, description="Size in bytes.")
    sha256: Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9a-f]{64}$")] = Field(
        description="SHA-256 of the content, hex."
    )
    content_type: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        default=None, description="MIME type."
    )
    duration: float | None = Field(default=None, ge=0, le=MAX_SAFE_INTEGER, description="Seconds (media files).")
    width: int | None = Field(default=None, ge=0, le=65_535, description="Frame width in pixels.")
    height: int | None = Field(default=None, ge=0, le=65_535, description="Frame height in pixels.")
    fps: float | None = Field(default=None, ge=0, le=10_000, description="Frame rate.")
    video_codec: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="Video codec as ffprobe names it."
    )
    audio_codec: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="Audio codec as ffprobe names it."
    )


class NotificationStatus(_Model):
    """The delivery of one event to one webhook (`id` is the CloudEvent's id: receivers deduplicate by it)."""

    url: Annotated[str, StringConstraints(max_length=2048)] = Field(description="The webhook.")
    event: NotifyEvent = Field(description="The phase change announced.")
    id: Annotated[str, StringConstraints(max_length=128)] = Field(description="CloudEvent id (the same on retries).")
    state: Literal["Retrying", "Delivered", "Failed", "Refused"] = Field(
        description="Delivered; Retrying (after a failed attempt); Failed (gave up); Refused (URL not allowed)."
    )
    attempts: int = Field(default=0, ge=0, le=1000, description="Requests sent so far.")
    last_attempt_time: Timestamp | None = Field(default=None, description="When the last request was sent.")
    response_code: int | None = Field(default=None, ge=0, le=999, description="HTTP status of the last response.")
    message: Annotated[str, StringConstraints(max_length=1024)] | None = Field(
        default=None, description="Why the last attempt failed, or was refused."
    )


class ResolvedPreset(_Model):
    """Which preset, in which version, a VideoJob's output was merged with (a snapshot taken at admission)."""

    kind: Literal["VideoJobPreset", "ClusterVideoJobPreset"] = Field(
        description="VideoJobPreset (the VideoJob's namespace) or ClusterVideoJobPreset."
    )
    name: Annotated[str, StringConstraints(max_length=253)] = Field(description="The preset's name.")
    uid: Annotated[str, StringConstraints(max_length=64)] | None = Field(default=None, description="Its uid.")
    resource_version: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="Its resourceVersion when it was merged."
    )
    generation: int | None = Field(
        default=None, ge=0, le=MAX_SAFE_INTEGER, description="Its metadata.generation when it was merged."
    )


class VideoJobStatus(_Model):
    """What the operator observed. Written by the operator only (status subresource)."""

    model_config = ConfigDict(frozen=False)

    phase: Phase = Field(default=Phase.PENDING, description="Pending, Running, Succeeded, Failed or Cancelled.")
    queue_position: int | None = Field(
        default=None, ge=1, le=1_000_000, description="1 = next to be admitted; unset when not queued."
    )
    progress: float = Field(default=0, ge=0, le=100, description="Percent complete.")
    attempts: int = Field(default=0, ge=0, le=1000, description="Runs started so far.")
    job_name: Annotated[str, StringConstraints(max_length=63)] | None = Field(
        default=None, description="The Kubernetes Job of the current (or last) attempt."
    )
    hardware: Literal["cpu", "nvidia"] | None = Field(default=None, description="Hardware the job runs on.")
    node: Annotated[str, StringConstraints(max_length=253)] | None = Field(
        default=None, description="Node the job's pod runs on."
    )
    queued_at: Timestamp | None = Field(default=None, description="When the operator first queued the job.")
    started_at: Timestamp | None = Field(default=None, description="When the first attempt started.")
    completed_at: Timestamp | None = Field(default=None, description="When the job reached a terminal phase.")
    artifacts: list[Artifact] = Field(default_factory=list, max_length=16, description="Files the job produced.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Standard conditions (Kubernetes API conventions), one per type: Admitted, Running, Succeeded, "
        "Failed, Cancelled, Finished.",
        # A list map keyed by type: server-side apply and strategic merges treat each type as one entry.
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    notifications: list[NotificationStatus] = Field(
        default_factory=list,
        max_length=4 * (MAX_WEBHOOKS + 4),
        description="Delivery of each notification to each webhook (written by the operator's notifier).",
    )
    preset: ResolvedPreset | None = Field(
        default=None,
        description="The preset the output was merged with when the job was admitted; later edits of the preset "
        "change neither this job nor its retries.",
    )
    message: Annotated[str, StringConstraints(max_length=4096)] | None = Field(
        default=None, description="Human-readable summary of the current state."
    )
    reason: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        default=None, description="Machine-readable reason of the current state, e.g. BadInput."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, le=MAX_SAFE_INTEGER, description="metadata.generation the status was computed for."
    )


# Rules at the root of the resource: only there can CEL see spec and status together. (The name bound,
# MAX_NAME_LENGTH, is a maxLength on metadata.name in the CRD: the API server checks it before any CEL rule.)
RESOURCE_VALIDATIONS = [
    # Priority may change only while the job waits; spec rules cannot see status, so this one sits at the root.
    cel(
        "self.spec.priority == oldSelf.spec.priority || !has(oldSelf.status) || !has(oldSelf.status.phase)"
        " || oldSelf.status.phase == 'Pending'",
        "priority can change only while the job is Pending",
        ".spec.priority",
    ),
]


class VideoJob(_Model):
    """The whole resource, for tools that handle complete objects (samples, tests)."""

    api_version: Literal["videojob.dev/v1alpha1"] = API_VERSION  # type: ignore[assignment]
    kind: Literal["VideoJob"] = KIND  # type: ignore[assignment]
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: VideoJobSpec
    status: VideoJobStatus | None = None

    @model_validator(mode="after")
    def _name_fits(self) -> VideoJob:
        name = self.metadata.get("name")
        if isinstance(name, str) and len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"metadata.name must be at most {MAX_NAME_LENGTH} characters")
        return self


# ---------------------------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------------------------


class VideoJobPresetSpec(OutputSettings):
    """Output settings to share, like MediaConvert's output presets: a VideoJob names one in `spec.output.preset`
    and overrides any of its fields (see presets.merge_output). A preset is a complete output by itself: what it
    omits takes the defaults, and the rules between fields hold for it alone."""

    model_config = ConfigDict(json_schema_extra=_settings_rules("false"))

    description: (
        Annotated[
            str,
            StringConstraints(max_length=256),
            Matches(r"^[^\x00-\x1f\x7f]*$", "may hold no control characters"),
        ]
        | None
    ) = Field(default=None, description="What the preset is for, shown by `kubectl get videojobpresets`.")

    @model_validator(mode="after")
    def _complete(self) -> VideoJobPresetSpec:
        self.check_settings()
        return self


class VideoJobPreset(_Model):
    """A namespaced preset: VideoJobs of its namespace name it in `spec.output.preset`."""

    api_version: Literal["videojob.dev/v1alpha1"] = API_VERSION  # type: ignore[assignment]
    kind: Literal["VideoJobPreset"] = PRESET_KIND  # type: ignore[assignment]
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: VideoJobPresetSpec = Field(default_factory=VideoJobPresetSpec)


class ClusterVideoJobPreset(_Model):
    """A cluster-scoped preset, kept by the platform team: a VideoJob of any namespace names it in
    `spec.output.preset` when its namespace has no VideoJobPreset of that name."""

    api_version: Literal["videojob.dev/v1alpha1"] = API_VERSION  # type: ignore[assignment]
    kind: Literal["ClusterVideoJobPreset"] = CLUSTER_PRESET_KIND  # type: ignore[assignment]
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: VideoJobPresetSpec = Field(default_factory=VideoJobPresetSpec)
