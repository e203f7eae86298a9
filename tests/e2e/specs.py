"""Small VideoJob specs for the e2e tests: the cheapest work that still runs the real transcoder."""

from __future__ import annotations

from typing import Any


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
