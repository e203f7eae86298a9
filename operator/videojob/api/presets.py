"""Output presets: how a VideoJob's output and the preset it names become one output. Pure functions, no I/O.

Merge rules (docs/api.md, "Presets", says the same to users):

1. Start from the preset's fields (`VideoJobPresetSpec`: container, video, audio, thumbnail; not its description).
2. Every field the VideoJob's `output` sets overrides the preset's; objects (`video`, `audio`, `thumbnail`) merge
   field by field, so `video: {crf: 20}` keeps the preset's codec, speed preset and resolution.
3. Rate control is one choice: a VideoJob that sets `video.crf` or `video.bitrate` replaces both of the preset's
   (a preset's `crf: 23` and a job's `bitrate: 4M` would otherwise be an invalid pair).
4. What neither sets takes the model's default (h264, aac, mp4, medium), as without a preset.
5. `uri`, `name` and `overwrite` are the VideoJob's alone; a field cannot be unset by a VideoJob, only overridden.

The merged spec is validated as a whole (every rule of a VideoJob without a preset), so a combination that does not
work (a job's `container: webm` over a preset's h264) fails with the rule's message and the field's path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from videojob.api.models import VideoJobPresetSpec, VideoJobSpec

# Fields of `video` that together choose the rate control: a VideoJob setting one replaces all of the preset's.
RATE_CONTROL = ("crf", "bitrate")


def _merge(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """`own` over `base` (wire form), objects merged field by field."""
    out = dict(base)
    for key, value in own.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def merged_output(preset: VideoJobPresetSpec, output: Mapping[str, Any]) -> dict[str, Any]:
    """The output (wire form) a VideoJob gets from `preset` and its own `output` (wire form, only the fields it
    sets: as the API server stores it, or `Output.model_dump(exclude_unset=True)`). Not validated here."""
    base = preset.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude={"description"})
    own = {k: v for k, v in output.items() if k != "preset"}
    own_video = own.get("video")
    if isinstance(own_video, Mapping) and any(k in own_video for k in RATE_CONTROL) and "video" in base:
        base["video"] = {k: v for k, v in base["video"].items() if k not in RATE_CONTROL}
    return _merge(base, own)


def apply_preset(spec: VideoJobSpec, preset: VideoJobPresetSpec) -> VideoJobSpec:
    """The spec the job runs: `spec` with its output merged with `preset` (and no preset left to resolve).

    Raises pydantic's ValidationError, located at the field (`output.video.crf`), when the merge does not make a
    valid spec."""
    wire = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    wire["output"] = merged_output(preset, wire.get("output") or {})
    return VideoJobSpec.model_validate(wire)
