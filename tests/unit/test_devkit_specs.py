"""The VideoJobs tests build are valid VideoJobs: the wrapper's defaults and each of its steps, checked against the
API models (the contract the CRD is generated from)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from devkit.harness import videojob
from devkit.specs import VideoJobWrapper, copy_spec, encode_spec
from videojob.api.models import VideoJobSpec

IN, OUT = "s3://media/in/clip.mp4", "s3://media/out/clip/"


def wrapper() -> VideoJobWrapper:
    return VideoJobWrapper("clip", IN, OUT)


def test_the_default_is_the_cheapest_encode() -> None:
    assert wrapper().obj() == videojob("clip", encode_spec(IN, OUT))


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (lambda w: w.priority(1), {"spec": {"priority": 1}}),
        (lambda w: w.hardware("nvidia"), {"spec": {"hardware": "nvidia"}}),
        (lambda w: w.retries(2).deadline(60), {"spec": {"retries": 2, "activeDeadlineSeconds": 60}}),
        (lambda w: w.ttl(5), {"spec": {"ttlSecondsAfterFinished": 5}}),
        (lambda w: w.label("team", "a"), {"metadata": {"labels": {"team": "a"}}}),
        (
            lambda w: w.annotation("argocd.argoproj.io/tracking-id", "x"),
            {"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": "x"}}},
        ),
        (lambda w: w.set(operations=[{"text": {"text": "hi"}}]), {"spec": {"operations": [{"text": {"text": "hi"}}]}}),
        (lambda w: w.name("other"), {"metadata": {"name": "other"}}),
    ],
    ids=[
        "priority",
        "hardware",
        "retries and deadline",
        "ttl",
        "a label",
        "an annotation",
        "any spec field",
        "a new name",
    ],
)
def test_each_step_changes_one_thing_and_keeps_the_spec_valid(
    step: Callable[[VideoJobWrapper], VideoJobWrapper], expected: dict[str, Any]
) -> None:
    obj = step(wrapper()).obj()
    for part, fields in expected.items():
        for key, value in fields.items():
            assert obj[part][key] == value, obj
    VideoJobSpec.model_validate(obj["spec"])


def test_copy_video_is_copy_spec_with_the_steps_kept() -> None:
    obj = wrapper().retries(2).copy_video().obj()
    assert obj["spec"] == copy_spec(IN, OUT, retries=2)
    VideoJobSpec.model_validate(obj["spec"])


def test_obj_is_a_copy() -> None:
    w = wrapper()
    first = w.obj()
    first["spec"]["priority"] = 9
    assert "priority" not in w.obj()["spec"]
