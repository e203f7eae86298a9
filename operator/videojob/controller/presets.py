"""Which preset a VideoJob names, and the spec it runs with: pure functions over raw bodies, no I/O.

Resolution (a decision, written down in docs/api.md): `spec.output.preset: NAME` is the VideoJobPreset NAME of the
VideoJob's namespace if there is one, else the ClusterVideoJobPreset NAME. One name rather than a name and a kind,
because the common case is the platform's cluster presets, and a team may shadow one for its own namespace without
touching its VideoJobs. Shadowing gives a namespace nothing it could not do anyway: presets are shared defaults,
not policy, and a VideoJob may set every field itself. Which one was used is recorded in `status.preset`.

When it happens: at admission (every pass re-resolves a pending VideoJob, so it starts with the preset as it is
when admitted). The merged spec goes into the Job's pod template, which cannot change, so neither a later edit of
the preset nor a retry (another pod of the same Job) sees anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from videojob.api.models import CLUSTER_PRESET_KIND, PRESET_KIND, VideoJobPresetSpec, VideoJobSpec
from videojob.api.presets import apply_preset

Body = Mapping[str, Any]


@dataclass(frozen=True)
class Resolution:
    """What a pending VideoJob's preset decides: the body to admit (its spec merged), or why it waits, or why it
    can never run."""

    body: Body | None = None  # the VideoJob with its merged spec (wire form), ready for admission
    snapshot: dict[str, Any] | None = None  # status.preset: which preset, in which version
    waiting: str | None = None  # no preset of that name exists (yet)
    problem: str | None = None  # the merge does not make a valid spec


def find_preset(
    name: str, namespace: str, namespaced: Mapping[tuple[str, str], Body], cluster: Mapping[str, Body]
) -> Body | None:
    """The VideoJobPreset `name` of `namespace`, else the ClusterVideoJobPreset `name`, else None."""
    return namespaced.get((namespace, name)) or cluster.get(name)


def snapshot(preset: Body) -> dict[str, Any]:
    """`status.preset` for a preset body: its kind, name and version."""
    meta = preset.get("metadata") or {}
    out: dict[str, Any] = {
        "kind": CLUSTER_PRESET_KIND if not meta.get("namespace") else PRESET_KIND,
        "name": meta.get("name"),
    }
    for key in ("uid", "resourceVersion", "generation"):
        if meta.get(key) is not None:
            out[key] = meta[key]
    return out


def describe_preset(preset: Body) -> str:
    meta = preset.get("metadata") or {}
    if meta.get("namespace"):
        return f"{PRESET_KIND} {meta['namespace']}/{meta.get('name')}"
    return f"{CLUSTER_PRESET_KIND} {meta.get('name')}"


def _first_error(error: ValidationError, prefix: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in [*([prefix] if prefix else []), *first.get("loc", ())])
    message = str(first.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def resolve(vj: Body, spec: VideoJobSpec, preset: Body | None) -> Resolution:
    """The resolution of a valid `spec` (of VideoJob `vj`) that names a preset; `preset` is what `find_preset`
    found."""
    name = spec.output.preset
    namespace = str((vj.get("metadata") or {}).get("namespace", ""))
    if preset is None:
        return Resolution(
            waiting=f"waiting for preset {name!r}: no {PRESET_KIND} {name!r} in namespace "
            f"{namespace!r} and no {CLUSTER_PRESET_KIND} {name!r}; the job joins the queue "
            "when one is created"
        )
    which = describe_preset(preset)
    try:
        settings = VideoJobPresetSpec.model_validate(preset.get("spec") or {})
    except ValidationError as e:  # the CRD refuses such a preset; one written before a CRD upgrade may get here
        return Resolution(problem=f"{which} is invalid: {_first_error(e, 'spec')}")
    try:
        merged = apply_preset(spec, settings)
    except ValidationError as e:
        return Resolution(problem=f"output merged with {which} is invalid: {_first_error(e, '')}")
    body = {**vj, "spec": {**dict(vj.get("spec") or {}), **merged.to_wire()}}
    return Resolution(body=body, snapshot=snapshot(preset))
