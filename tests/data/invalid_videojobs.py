"""A corpus of invalid VideoJobs: one row each, a valid base job plus the edits that break it.

Each row names the field the refusal must name. The same table runs twice: against the API models
(tests/unit/test_api_models.py) and against the real API server with the generated CRD installed
(tests/integration/test_crd.py), so the two validators cannot drift apart unnoticed.

`field` is the path as the API server prints it (`spec.operations[0].text.end`); `model` overrides the text
the pydantic error must contain where the models report the same problem one level up (cross-field rules
live in model validators, which pydantic reports at the model's path); `says` is a sentence the API server's
refusal must contain (the field's name and what it must be), for the fields whose format the CRD checks with a CEL
rule: a refusal never shows a regular expression.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from videojob.api.models import API_VERSION, KIND

DELETE = object()  # as an edit's value: remove the key

SAMPLE_IN = "s3://videojob-samples/in"


def base_job(name: str = "valid-job") -> dict[str, Any]:
    """A valid VideoJob with several inputs and no operations; the corpus adds what breaks it."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "inputs": [
                {"name": "main", "uri": f"{SAMPLE_IN}/main.mp4"},
                {"name": "music", "uri": f"{SAMPLE_IN}/music.mp3"},
                {"name": "cam", "uri": f"{SAMPLE_IN}/cam.mp4"},
                {"name": "subs", "uri": f"{SAMPLE_IN}/talk.srt"},
                {"name": "intro", "uri": f"{SAMPLE_IN}/intro.mp4"},
            ],
            "operations": [],
            "output": {"uri": "s3://videojob-samples/out/test/"},
        },
    }


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _steps(path: str) -> list[str | int]:
    return [name if name else int(index) for name, index in _STEP.findall(path)]


def edited(doc: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `doc` with each `path: value` edit applied (paths like `spec.inputs[0].uri`)."""
    out = copy.deepcopy(doc)
    for path, value in edits.items():
        *parents, last = _steps(path)
        node: Any = out
        for step in parents:
            if isinstance(step, str) and step not in node:
                node[step] = {}
            node = node[step]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list) and isinstance(last, int) and last == len(node):
            node.append(copy.deepcopy(value))
        else:
            node[last] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Invalid:
    id: str
    edits: dict[str, Any]
    field: str
    model: str | None = None
    says: str | None = None

    def job(self, name: str = "invalid-job") -> dict[str, Any]:
        return edited(base_job(name), self.edits)

    @property
    def model_text(self) -> str:
        return self.model or self.field


def _uri(value: str) -> dict[str, Any]:
    return {"spec.inputs[0].uri": value}


def _op(kind: str, **body: Any) -> dict[str, Any]:
    return {"spec.operations": [{kind: body}]}


def _ops(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"spec.operations": list(ops)}


_TEXT = {"text": {"text": "hello"}}
_URI = "spec.inputs[0].uri"
_REFS = "undeclared input"

INVALID: list[Invalid] = [
    # Input URIs: only s3:// and http(s)://; S3 keys without "..", empty or leading-slash segments.
    Invalid("ftp scheme", _uri("ftp://media.example.com/a.mp4"), _URI),
    Invalid("file scheme", _uri("file:///etc/passwd"), _URI),
    Invalid("no scheme", _uri("videojob-samples/in/a.mp4"), _URI),
    Invalid("dot-dot segment in key", _uri("s3://videojob-samples/in/../secret.mp4"), _URI),
    Invalid("key that is only dot-dot", _uri("s3://videojob-samples/.."), _URI),
    Invalid("key starting with a slash", _uri("s3://videojob-samples//etc/passwd"), _URI),
    Invalid("bucket without a key", _uri("s3://videojob-samples/"), _URI),
    Invalid("upper-case bucket", _uri("s3://Videojob-Samples/in/a.mp4"), _URI),
    Invalid("newline in uri", _uri("s3://videojob-samples/in/a.mp4\nx"), _URI),
    Invalid("space in https uri", _uri("https://media.example.com/a b.mp4"), _URI),
    Invalid("uri longer than 2048", _uri("s3://videojob-samples/" + "a" * 2100), _URI),
    Invalid("output to https", {"spec.output.uri": "https://media.example.com/out/"}, "spec.output.uri"),
    Invalid("output prefix with dot-dot", {"spec.output.uri": "s3://videojob-samples/out/../x/"}, "spec.output.uri"),
    Invalid("output without uri", {"spec.output.uri": DELETE}, "spec.output.uri"),
    # Inputs.
    Invalid("empty inputs", {"spec.inputs": []}, "spec.inputs"),
    Invalid("no inputs", {"spec.inputs": DELETE}, "spec.inputs"),
    Invalid(
        "17 inputs",
        {"spec.inputs": [{"name": f"i{n}", "uri": f"{SAMPLE_IN}/{n}.mp4"} for n in range(17)]},
        "spec.inputs",
    ),
    Invalid("duplicate input names", {"spec.inputs[1].name": "main"}, "spec.inputs", "input names must be unique"),
    Invalid("upper-case input name", {"spec.inputs[0].name": "Main"}, "spec.inputs[0].name"),
    Invalid("negative trim start", {"spec.inputs[0].trim": {"start": -1}}, "spec.inputs[0].trim.start"),
    Invalid("zero trim duration", {"spec.inputs[0].trim": {"duration": 0}}, "spec.inputs[0].trim.duration"),
    # Operations: known kinds, exactly one per step, names that exist, concat first.
    Invalid("unknown operation", _op("blur", radius=3), "spec.operations[0].blur"),
    Invalid("empty operation", {"spec.operations": [{}]}, "spec.operations[0]", "exactly one of"),
    Invalid(
        "two kinds in one operation",
        {"spec.operations": [{**_TEXT, "pip": {"input": "cam"}}]},
        "spec.operations[0]",
        "exactly one of",
    ),
    Invalid("33 operations", {"spec.operations": [_TEXT] * 33}, "spec.operations"),
    Invalid("dangling audio input", _op("audio", input="nope"), "spec.operations", _REFS),
    Invalid("dangling concat input", _op("concat", inputs=["main", "nope"]), "spec.operations", _REFS),
    Invalid("dangling pip input", _op("pip", input="nope"), "spec.operations", _REFS),
    Invalid("dangling subtitles input", _op("subtitles", input="nope"), "spec.operations", _REFS),
    Invalid(
        "concat not first",
        _ops(_TEXT, {"concat": {"inputs": ["main", "intro"]}}),
        "spec.operations",
        "concat must be the first operation",
    ),
    Invalid(
        "concat twice",
        _ops({"concat": {"inputs": ["main", "intro"]}}, {"concat": {"inputs": ["main", "cam"]}}),
        "spec.operations",
        "concat must be the first operation",
    ),
    Invalid("concat of one input", _op("concat", inputs=["main"]), "spec.operations[0].concat.inputs"),
    # Audio.
    Invalid("negative audio offset", _op("audio", input="music", offset=-1), "spec.operations[0].audio.offset"),
    Invalid("volume 11", _op("audio", input="music", volume=11), "spec.operations[0].audio.volume"),
    Invalid("unknown audio mode", _op("audio", input="music", mode="overlay"), "spec.operations[0].audio.mode"),
    # Text.
    Invalid(
        "text end before start",
        _op("text", text="hi", start=5, end=2),
        "spec.operations[0].text.end",
        "spec.operations[0].text: Value error, end must be greater than start",
    ),
    Invalid("10k-character text", _op("text", text="x" * 10_000), "spec.operations[0].text.text"),
    Invalid("empty text", _op("text", text=""), "spec.operations[0].text.text"),
    Invalid("colour with filter syntax", _op("text", text="hi", color="red:drawbox"), "spec.operations[0].text.color"),
    Invalid("font given as a path", _op("text", text="hi", font="/etc/passwd"), "spec.operations[0].text.font"),
    Invalid("unknown text position", _op("text", text="hi", position="middle"), "spec.operations[0].text.position"),
    Invalid("text offset beyond 4096", _op("text", text="hi", offsetX=5000), "spec.operations[0].text.offsetX"),
    # Subtitles.
    Invalid(
        "subtitles from input and generate",
        _op("subtitles", input="subs", generate={}),
        "spec.operations[0].subtitles",
        "exactly one of input or generate",
    ),
    Invalid(
        "subtitles from nothing",
        _op("subtitles", burn=True),
        "spec.operations[0].subtitles",
        "exactly one of input or generate",
    ),
    Invalid(
        "subtitles neither burned nor emitted",
        _op("subtitles", input="subs", burn=False),
        "spec.operations[0].subtitles",
        "burned in or emitted",
    ),
    Invalid(
        "duplicate emit formats",
        _op("subtitles", input="subs", emit=["srt", "srt"]),
        "spec.operations[0].subtitles.emit",
        "emit formats must be unique",
    ),
    Invalid(
        "unknown emit format", _op("subtitles", input="subs", emit=["ass"]), "spec.operations[0].subtitles.emit[0]"
    ),
    Invalid(
        "spoken language as a word",
        _op("subtitles", generate={"language": "english"}),
        "spec.operations[0].subtitles.generate.language",
    ),
    # Picture-in-picture.
    Invalid(
        "pip end equal to start",
        _op("pip", input="cam", start=3, end=3),
        "spec.operations[0].pip.end",
        "spec.operations[0].pip: Value error, end must be greater than start",
    ),
    Invalid("pip scale 2", _op("pip", input="cam", scale=2), "spec.operations[0].pip.scale"),
    # Output encoding.
    Invalid("unknown container", {"spec.output.container": "flv"}, "spec.output.container"),
    Invalid("unknown video codec", {"spec.output.video": {"codec": "mpeg2"}}, "spec.output.video.codec"),
    Invalid("unknown audio codec", {"spec.output.audio": {"codec": "flac"}}, "spec.output.audio.codec"),
    Invalid(
        "crf with bitrate",
        {"spec.output.video": {"crf": 23, "bitrate": "4M"}},
        "spec.output.video.crf",
        "crf and bitrate are mutually exclusive",
    ),
    Invalid("crf 64", {"spec.output.video": {"crf": 64}}, "spec.output.video.crf"),
    Invalid(
        "crf 52 with h264",
        {"spec.output.video": {"codec": "h264", "crf": 52}},
        "spec.output.video.crf",
        "crf of h264 and h265 is 0 to 51",
    ),
    Invalid("bitrate with unit bps", {"spec.output.audio": {"bitrate": "128kbps"}}, "spec.output.audio.bitrate"),
    Invalid("unknown sample rate", {"spec.output.audio": {"sampleRate": 12345}}, "spec.output.audio.sampleRate"),
    Invalid(
        "opus at 44.1 kHz",
        {"spec.output.audio": {"codec": "opus", "sampleRate": 44100}},
        "spec.output.audio.sampleRate",
        "codec opus supports sampleRate",
    ),
    Invalid(
        "mp3 with 6 channels",
        {"spec.output.audio": {"codec": "mp3", "channels": 6}},
        "spec.output.audio.channels",
        "codec mp3 carries at most 2 channels",
    ),
    Invalid("fps 0", {"spec.output.video": {"fps": 0}}, "spec.output.video.fps"),
    Invalid(
        "resolution with a star", {"spec.output.video": {"resolution": "1280*720"}}, "spec.output.video.resolution"
    ),
    Invalid("odd resolution", {"spec.output.video": {"resolution": "1281x720"}}, "spec.output.video.resolution"),
    Invalid(
        "resolution beyond 7680", {"spec.output.video": {"resolution": "8000x4000"}}, "spec.output.video.resolution"
    ),
    Invalid(
        "copy video codec with text overlay",
        {**_ops(_TEXT), "spec.output.video": {"codec": "copy"}},
        "spec.output.video.codec",
        "video codec copy cannot be used",
    ),
    Invalid(
        "copy video codec with crf",
        {"spec.output.video": {"codec": "copy", "crf": 20}},
        "spec.output.video.codec",
        "codec copy cannot be combined",
    ),
    Invalid(
        "copy audio codec with audio mix",
        {**_op("audio", input="music"), "spec.output.audio": {"codec": "copy"}},
        "spec.output.audio.codec",
        "audio codec copy cannot be used",
    ),
    Invalid(
        "webm with h264",
        {"spec.output.container": "webm", "spec.output.audio": {"codec": "opus"}},
        "spec.output.container",
        "container webm needs",
    ),
    Invalid(
        "webm with aac",
        {"spec.output.container": "webm", "spec.output.video": {"codec": "vp9"}},
        "spec.output.container",
        "container webm needs",
    ),
    Invalid("thumbnail width 8", {"spec.output.thumbnail": {"width": 8}}, "spec.output.thumbnail.width"),
    # Presets: what a VideoJob leaves out takes the defaults unless it names a preset; what it sets is checked.
    Invalid(
        "webm with the default codecs",
        {"spec.output.container": "webm"},
        "spec.output.container",
        "container webm needs",
    ),
    Invalid(
        "crf 55 with the default codec",
        {"spec.output.video": {"crf": 55}},
        "spec.output.video.crf",
        "crf of h264 and h265 is 0 to 51",
        says="crf of h264 and h265 is 0 to 51",
    ),
    Invalid(
        "preset name with upper case",
        {"spec.output.preset": "Web-720p"},
        "spec.output.preset",
        says="preset must be a Kubernetes object name",
    ),
    Invalid(
        "copy video with crf beside a preset",
        {"spec.output.preset": "web-720p", "spec.output.video": {"codec": "copy", "crf": 20}},
        "spec.output.video.codec",
        "codec copy cannot be combined",
    ),
    Invalid(
        "crf with bitrate beside a preset",
        {"spec.output.preset": "web-720p", "spec.output.video": {"crf": 20, "bitrate": "2M"}},
        "spec.output.video.crf",
        "crf and bitrate are mutually exclusive",
    ),
    # Formats: the API server answers with a sentence naming the field, never the pattern.
    Invalid(
        "colour typo in text",
        _op("text", text="hi", color="whtie"),
        "spec.operations[0].text.color",
        says="color must be a CSS colour name",
    ),
    Invalid(
        "colour typo in text box",
        _op("text", text="hi", box=True, boxColor="blakc"),
        "spec.operations[0].text.boxColor",
        says="boxColor must be a CSS colour name",
    ),
    Invalid(
        "colour typo in subtitle style",
        _op("subtitles", input="subs", style={"color": "yelow"}),
        "spec.operations[0].subtitles.style.color",
        says="color must be a CSS colour name",
    ),
    Invalid(
        "short hex colour",
        _op("text", text="hi", color="#fff"),
        "spec.operations[0].text.color",
        says="or #RRGGBB or #RRGGBBAA",
    ),
    Invalid(
        "ftp input, said plainly",
        _uri("ftp://media.example.com/a.mp4"),
        _URI,
        says="uri must be s3://BUCKET/KEY or https://HOST/PATH",
    ),
    Invalid(
        "output prefix with a space",
        {"spec.output.uri": "s3://videojob-samples/out put/"},
        "spec.output.uri",
        says="uri must be s3://BUCKET/PREFIX/",
    ),
    Invalid(
        "input name with a dot",
        {"spec.inputs[0].name": "main.mp4"},
        "spec.inputs[0].name",
        says="name must be lower-case letters, digits and dashes",
    ),
    Invalid(
        "resolution as words",
        {"spec.output.video": {"resolution": "full-hd"}},
        "spec.output.video.resolution",
        says="resolution must be WIDTHxHEIGHT",
    ),
    Invalid(
        "bitrate without unit",
        {"spec.output.video": {"bitrate": "4000"}},
        "spec.output.video.bitrate",
        says="bitrate must be a number with k or M",
    ),
    Invalid(
        "output name with a slash", {"spec.output.name": "a/b"}, "spec.output.name", says="name must be a file name"
    ),
    Invalid(
        "font with a colon",
        _op("text", text="hi", font="Sans:bold"),
        "spec.operations[0].text.font",
        says="font must be a font family name",
    ),
    Invalid(
        "language code in capitals",
        _op("subtitles", generate={"language": "EN"}),
        "spec.operations[0].subtitles.generate.language",
        says="language must be an ISO 639 code",
    ),
    # Notifications.
    Invalid(
        "webhook over ftp",
        {"spec.notify": {"webhooks": [{"url": "ftp://hooks.example.com/x"}]}},
        "spec.notify.webhooks[0].url",
        says="url must be https://HOST/PATH",
    ),
    Invalid(
        "webhook with a space",
        {"spec.notify": {"webhooks": [{"url": "https://hooks.example.com/a b"}]}},
        "spec.notify.webhooks[0].url",
        says="url must be https://HOST/PATH",
    ),
    Invalid(
        "unknown webhook event",
        {"spec.notify": {"webhooks": [{"url": "https://h.example.com/", "events": ["Pending"]}]}},
        "spec.notify.webhooks[0].events[0]",
    ),
    Invalid(
        "five webhooks",
        {"spec.notify": {"webhooks": [{"url": f"https://h{n}.example.com/"} for n in range(5)]}},
        "spec.notify.webhooks",
    ),
    Invalid(
        "webhook secret with an underscore",
        {"spec.notify": {"webhooks": [{"url": "https://h.example.com/", "secretRef": {"name": "hook_key"}}]}},
        "spec.notify.webhooks[0].secretRef.name",
        says="name must be a Kubernetes object name",
    ),
    Invalid(
        "metadata key with a space",
        {"spec.userMetadata": {"the team": "ads"}},
        "spec.userMetadata",
        says="userMetadata keys must be at most 128 letters",
    ),
    Invalid("17 metadata entries", {"spec.userMetadata": {f"k{n}": "v" for n in range(17)}}, "spec.userMetadata"),
    Invalid("metadata value over 256", {"spec.userMetadata": {"note": "x" * 257}}, "spec.userMetadata.note"),
    # Scheduling and lifecycle fields.
    Invalid("priority 0", {"spec.priority": 0}, "spec.priority"),
    Invalid("priority 11", {"spec.priority": 11}, "spec.priority"),
    Invalid("priority as a word", {"spec.priority": "high"}, "spec.priority"),
    Invalid("unknown hardware", {"spec.hardware": "tpu"}, "spec.hardware"),
    Invalid("retries 11", {"spec.retries": 11}, "spec.retries"),
    Invalid("zero active deadline", {"spec.activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds"),
    Invalid(
        "secret name with underscore",
        {"spec.credentialsSecretRef": {"name": "s3_creds"}},
        "spec.credentialsSecretRef.name",
    ),
    # Unknown fields and the name.
    Invalid("unknown spec field", {"spec.shell": "rm -rf /"}, "spec.shell"),
    Invalid("misspelt output field", {"spec.output.video": {"bitrat": "4M"}}, "spec.output.video.bitrat"),
    Invalid("name longer than 52", {"metadata.name": "n" * 53}, "metadata.name"),
    Invalid("no spec", {"spec": DELETE}, "spec"),
]
