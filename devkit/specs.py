"""Small VideoJobs for tests, the demo and benchmarks: the cheapest work that still runs the real transcoder.

`encode_spec` and `copy_spec` give a spec; `VideoJobWrapper` a whole object, built the way Kueue's test wrappers
build Jobs: start from the cheap default, chain what the test is about, take `.obj()`:

    videojobs.create_object(VideoJobWrapper("blocker", uri, out).priority(1).hardware("cpu").obj())
"""

from __future__ import annotations

import copy
from typing import Any, Self

from devkit.harness import videojob


def encode_spec(input_uri: str, output_uri: str, **overrides: Any) -> dict[str, Any]:
    """Re-encode one input with the fastest settings (ultrafast, low quality, tiny audio)."""
    spec: dict[str, Any] = {
        "inputs": [{"name": "main", "uri": input_uri}],
        "output": {
            "uri": output_uri,
            "container": "mp4",
            "video": {"codec": "h264", "preset": "ultrafast", "crf": 35},
            "audio": {"codec": "aac", "bitrate": "64k"},
        },
        "retries": 0,
    }
    spec.update(overrides)
    return spec


def copy_spec(input_uri: str, output_uri: str, **overrides: Any) -> dict[str, Any]:
    """Copy the video stream (no re-encode) and re-encode a tiny audio track: the least CPU a real transcode takes.

    Audio is re-encoded rather than copied because `audio: {codec: copy}` fails in the planner as of this writing
    (an unused asetpts chain is left unconnected in the filter graph); see the e2e report.
    """
    spec: dict[str, Any] = {
        "inputs": [{"name": "main", "uri": input_uri}],
        "output": {
            "uri": output_uri,
            "container": "mp4",
            "video": {"codec": "copy"},
            "audio": {"codec": "aac", "bitrate": "32k"},
        },
        "retries": 0,
        "hardware": "cpu",
    }
    spec.update(overrides)
    return spec


class VideoJobWrapper:
    """A VideoJob under construction; every method changes one thing and returns the wrapper."""

    def __init__(self, name: str, input_uri: str, output_uri: str) -> None:
        self._obj = videojob(name, encode_spec(input_uri, output_uri))

    def obj(self) -> dict[str, Any]:
        """The VideoJob (a copy: the wrapper can go on to build another)."""
        return copy.deepcopy(self._obj)

    def spec(self) -> dict[str, Any]:
        return copy.deepcopy(self._obj["spec"])

    def name(self, name: str) -> Self:
        self._obj["metadata"]["name"] = name
        return self

    def copy_video(self) -> Self:
        """Copy the video stream instead of encoding it (see copy_spec)."""
        spec = self._obj["spec"]
        self._obj["spec"] = copy_spec(
            spec["inputs"][0]["uri"],
            spec["output"]["uri"],
            **{k: v for k, v in spec.items() if k not in ("inputs", "output")},
        )
        return self

    def priority(self, priority: int) -> Self:
        return self.set(priority=priority)

    def hardware(self, hardware: str) -> Self:
        return self.set(hardware=hardware)

    def retries(self, retries: int) -> Self:
        return self.set(retries=retries)

    def deadline(self, seconds: int) -> Self:
        return self.set(activeDeadlineSeconds=seconds)

    def ttl(self, seconds: int) -> Self:
        return self.set(ttlSecondsAfterFinished=seconds)

    def label(self, key: str, value: str) -> Self:
        self._obj["metadata"].setdefault("labels", {})[key] = value
        return self

    def annotation(self, key: str, value: str) -> Self:
        self._obj["metadata"].setdefault("annotations", {})[key] = value
        return self

    def set(self, **fields: Any) -> Self:
        """Any top-level spec fields, by their API names (`operations=[...]`, `output={...}`)."""
        self._obj["spec"].update(fields)
        return self
