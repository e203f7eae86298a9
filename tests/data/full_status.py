"""A status with every field set: the models must round-trip it and the API server must keep all of it (the
status schema declares every field; an undeclared one would be pruned silently)."""

from __future__ import annotations

from typing import Any

FULL_STATUS: dict[str, Any] = {
    "phase": "Succeeded",
    "queuePosition": 2,
    "progress": 100.0,
    "attempts": 2,
    "jobName": "transitions-a2-x7k2",
    "hardware": "cpu",
    "node": "cpu-0",
    "queuedAt": "2026-01-01T00:00:00Z",
    "startedAt": "2026-01-01T00:00:01Z",
    "completedAt": "2026-01-01T00:00:09Z",
    "artifacts": [
        {
            "uri": "s3://videojob-samples/out/test/output.mp4",
            "kind": "video",
            "size": 123456,
            "sha256": "a" * 64,
            "contentType": "video/mp4",
            "duration": 2.5,
            "width": 320,
            "height": 240,
            "fps": 25.0,
            "videoCodec": "h264",
            "audioCodec": "aac",
        }
    ],
    "conditions": [
        {
            "type": "Complete",
            "status": "True",
            "reason": "Succeeded",
            "message": "2 artifacts",
            "lastTransitionTime": "2026-01-01T00:00:09Z",
            "observedGeneration": 1,
        }
    ],
    "notifications": [
        {
            "url": "https://hooks.example.com/videojob",
            "event": "Succeeded",
            "id": "6f1c0d3e-5b8a-4b7e-9a8e-1d2c3b4a5f60/Succeeded",
            "state": "Delivered",
            "attempts": 2,
            "lastAttemptTime": "2026-01-01T00:00:12Z",
            "responseCode": 200,
            "message": "HTTP 500",
        }
    ],
    "message": "done",
    "reason": "Succeeded",
    "observedGeneration": 1,
}
