"""`videojob-transcode`: the transcoder container's entrypoint, and a local tool for development.

In a pod (the operator sets the environment, see `videojob.api.runtime`):

    videojob-transcode            # spec from VIDEOJOB_SPEC or VIDEOJOB_SPEC_FILE, inputs from S3/HTTPS

Locally, without S3:

    videojob-transcode --local --spec job.yaml --input intro=intro.mp4 --input music=song.mp3 --output-dir out/

Exit codes are the runtime contract's (0 ok, 65 bad input, 69 unsupported, 75 transient, 70 internal); on
failure exactly one line goes to stderr, and the TranscodeResult JSON goes to VIDEOJOB_RESULT_PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import ValidationError

from videojob import storage
from videojob.api import runtime
from videojob.api.conditions import Reason
from videojob.api.models import VideoJobSpec
from videojob.api.runtime import ExitCode, TranscodeResult
from videojob.errors import BadInput, TranscodeError
from videojob.inputs import InputPolicy
from videojob.transcoder import runner
from videojob.transcoder.progress import reporter_from_env

PROG = "videojob-transcode"
HARDWARE_CHOICES = ("cpu", "nvidia", "auto")
DEADLINE_MARGIN = 15.0  # seconds before the Job's activeDeadlineSeconds when we stop FFmpeg ourselves


def load_spec(text: str, source: str) -> VideoJobSpec:
    """A spec from JSON or YAML: the spec itself, or a whole VideoJob (its `.spec` is taken)."""
    data: Any
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise BadInput(f"spec from {source} is not JSON or YAML: {e}", reason=Reason.INVALID_SPEC) from None
    else:
        import yaml  # only for a spec written by hand: the operator hands over JSON (yaml costs ~10 ms to import)

        try:
            data = yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as e:
            raise BadInput(f"spec from {source} is not JSON or YAML: {e}", reason=Reason.INVALID_SPEC) from None
    if isinstance(data, dict) and "spec" in data and "kind" in data:
        data = data["spec"]
    try:
        spec = VideoJobSpec.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise BadInput(
            f"spec from {source} is invalid: {where}: {first.get('msg')}", reason=Reason.INVALID_SPEC
        ) from None
    if spec.output.preset is not None:
        # The operator merges the preset into the spec it hands over; the transcoder cannot read presets.
        raise BadInput(
            f"spec from {source} names output.preset {spec.output.preset!r}, which only the operator "
            "resolves: give the merged output instead",
            reason=Reason.INVALID_SPEC,
        )
    return spec


def _spec_text(args: argparse.Namespace, env: Mapping[str, str]) -> tuple[str, str]:
    if args.spec:
        return Path(args.spec).read_text(encoding="utf-8"), args.spec
    if env.get(runtime.ENV_SPEC):
        return env[runtime.ENV_SPEC], runtime.ENV_SPEC
    if env.get(runtime.ENV_SPEC_FILE):
        path = env[runtime.ENV_SPEC_FILE]
        return Path(path).read_text(encoding="utf-8"), path
    raise BadInput(
        f"no spec: pass --spec FILE or set {runtime.ENV_SPEC} or {runtime.ENV_SPEC_FILE}", reason=Reason.NO_SPEC
    )


def _parse_inputs(items: Sequence[str]) -> dict[str, Path]:
    inputs: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise BadInput(f"--input {item!r}: use NAME=PATH", reason=Reason.INVALID_ARGUMENTS)
        inputs[name] = Path(path)
    return inputs


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Run one VideoJob's transcoding (FFmpeg).")
    parser.add_argument("--spec", help="spec file (JSON or YAML; a whole VideoJob is fine)")
    parser.add_argument("--local", action="store_true", help="local files in and out, no S3; progress bar")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=PATH", help="a local input (--local)")
    parser.add_argument("--output-dir", help="where --local writes the artifacts")
    parser.add_argument("--hardware", choices=HARDWARE_CHOICES, help=f"default: ${runtime.ENV_HARDWARE}")
    parser.add_argument("--workdir", help=f"scratch directory (default: ${runtime.ENV_WORKDIR} or a temporary one)")
    parser.add_argument("--result", help=f"write the result JSON here (default: ${runtime.ENV_RESULT_PATH})")
    parser.add_argument("--timeout", type=float, help="stop FFmpeg after this many seconds")
    return parser


class _Terminated(Exception):
    pass


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated()


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    args = arguments().parse_args(argv)
    started = time.monotonic()
    result_path = args.result or env.get(runtime.ENV_RESULT_PATH) or ("" if args.local else runtime.DEFAULT_RESULT_PATH)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    temporary: tempfile.TemporaryDirectory[str] | None = None
    try:
        try:
            text, source = _spec_text(args, env)
            spec = load_spec(text, source)
            workdir_name = args.workdir or env.get(runtime.ENV_WORKDIR)
            if not workdir_name:
                temporary = tempfile.TemporaryDirectory(prefix="videojob-")
                workdir_name = temporary.name
            deadline = args.timeout
            if deadline is None and spec.active_deadline_seconds:
                deadline = max(1.0, spec.active_deadline_seconds - DEADLINE_MARGIN)
            from videojob.transcoder import stt

            hardware = args.hardware or env.get(runtime.ENV_HARDWARE) or "cpu"
            # --hardware is both what to use and what was asked; in a pod the operator says each separately
            requested = args.hardware or env.get(runtime.ENV_HARDWARE_REQUESTED) or hardware
            if requested not in HARDWARE_CHOICES:
                raise ValueError(f"{runtime.ENV_HARDWARE_REQUESTED}={requested!r}: use one of {HARDWARE_CHOICES}")
            job = runner.Job(
                spec=spec,
                workdir=Path(workdir_name),
                hardware=hardware,
                hardware_requested=requested,
                policy=InputPolicy.from_env(env),
                reporter=reporter_from_env(env, local=args.local),
                local_inputs=_parse_inputs(args.input) if args.local else None,
                output_dir=Path(args.output_dir or ".") if args.local else None,
                deadline_seconds=deadline,
                model_dirs=stt.model_dirs_from_env(env),
                owner=_owner(env, spec) if not args.local else None,
                chunking=_chunking(env, spec, args),
            )
            result = runner.run(job)
        except _Terminated:
            raise runner.Stopped("the transcoder was told to stop (SIGTERM)") from None
        except TranscodeError:  # some are ValueErrors too (an unknown colour): bad input, not configuration
            raise
        except ValueError as e:  # configuration from the environment that makes no sense
            raise TranscodeError(f"configuration: {e}", reason=Reason.INVALID_CONFIGURATION) from None
    except TranscodeError as error:
        print(f"{PROG}: {error.reason}: {' '.join(str(error).split())}", file=sys.stderr)
        _write_result(result_path, runner.failure_result(error, time.monotonic() - started, _leftovers(error)))
        return int(error.exit_code)
    except Exception as error:  # a bug: say so in one line, retried like a transient failure
        print(f"{PROG}: InternalError: {type(error).__name__}: {' '.join(str(error).split())}", file=sys.stderr)
        failure = TranscodeError(f"{type(error).__name__}: {error}")
        _write_result(result_path, runner.failure_result(failure, time.monotonic() - started, _leftovers(error)))
        return int(ExitCode.INTERNAL)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if temporary is not None:
            temporary.cleanup()
    _write_result(result_path, result)
    if args.local:
        for artifact in result.artifacts:
            print(artifact.uri)
    return int(ExitCode.OK)


def _chunking(env: Mapping[str, str], spec: VideoJobSpec, args: argparse.Namespace) -> runner.Chunking | None:
    """This pod's part of a chunked job (VIDEOJOB_PART, VIDEOJOB_SEGMENTS and Kubernetes' JOB_COMPLETION_INDEX),
    or None for a whole job. --local keeps the segments in the output directory."""
    part = env.get(runtime.ENV_PART, "").strip()
    if not part:
        return None
    if part not in (runtime.PART_SEGMENT, runtime.PART_JOIN):
        raise ValueError(f"{runtime.ENV_PART}={part!r}: use {runtime.PART_SEGMENT} or {runtime.PART_JOIN}")
    count = int(env.get(runtime.ENV_SEGMENTS, "0"))
    if count < 1:
        raise ValueError(f"{runtime.ENV_SEGMENTS} must be a positive number with {runtime.ENV_PART}={part}")
    index = int(env.get(runtime.ENV_COMPLETION_INDEX, "")) if part == runtime.PART_SEGMENT else None
    if index is not None and not 0 <= index < count:
        raise ValueError(f"{runtime.ENV_COMPLETION_INDEX}={index} is not a segment of {count}")
    if args.local:
        store = str(Path(args.output_dir or ".") / runtime.SEGMENTS_FOLDER)
    else:
        uid = env.get(runtime.ENV_UID, "").strip()
        if not uid:
            raise ValueError(f"{runtime.ENV_UID} is needed to keep the segments of a chunked job")
        store = runtime.segments_prefix(spec, uid)
    return runner.Chunking(count=count, index=index, store=store)


def _owner(env: Mapping[str, str], spec: VideoJobSpec) -> storage.Owner | None:
    """The VideoJob that writes (from the operator's environment), or None when run by hand."""
    uid = env.get(runtime.ENV_UID, "").strip()
    if not uid:
        return None
    return storage.Owner(
        uid=uid,
        namespace=env.get(runtime.ENV_NAMESPACE, ""),
        name=env.get(runtime.ENV_NAME, ""),
        overwrite=spec.output.overwrite,
    )


def _leftovers(error: BaseException) -> list[str]:
    """What a failed run could not delete (runner.run puts it on the error, or on the one it replaced)."""
    for candidate in (error, error.__context__):
        found = getattr(candidate, "leftovers", None)
        if found:
            return list(found)
    return []


def _write_result(path: str, result: TranscodeResult) -> None:
    if not path:
        return
    try:
        Path(path).write_text(runner.result_json(result), encoding="utf-8")
    except OSError as e:
        print(f"{PROG}: cannot write the result to {path}: {e}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
