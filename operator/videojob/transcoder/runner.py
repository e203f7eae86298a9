"""The one place the transcoder touches files, storage and processes: open → probe → plan → FFmpeg → upload.

`run(job)` does a whole VideoJob and returns the TranscodeResult, or raises a TranscodeError (BadInput,
Unsupported, Transient) that the CLI turns into an exit code and one line. FFmpeg runs from an argument list,
its `-progress` output feeds the reporter, its stderr is kept in a bounded buffer for the error message, and it
is killed at the deadline or when the runner itself is told to stop.

Media inputs are not downloaded first: they are opened (policy, size cap, pinned version) and served to ffprobe
and FFmpeg by byte range from a loopback server while FFmpeg runs (`streaming.InputServer`); subtitle files, and
inputs from HTTP(S) servers without ranges, are fetched to files as before. The main result uploads while FFmpeg
writes it (`streaming.StreamedUpload`); an MP4/MOV gets its index moved to the front on the way (`mp4`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videojob import storage, streaming
from videojob.api.conditions import Reason
from videojob.api.models import Artifact, VideoJobSpec
from videojob.api.runtime import TERMINATION_MESSAGE_LIMIT, TranscodeResult, output_uri, output_uris
from videojob.errors import BadInput, TranscodeError, Transient, Unsupported
from videojob.inputs import InputPolicy
from videojob.transcoder import encoders, mp4, planner
from videojob.transcoder.childenv import child_env
from videojob.transcoder.probe import INPUT_FORMATS, MediaFacts, Streamed, finish_probe, probe, start_probe
from videojob.transcoder.progress import NullReporter, ProgressParser, Reporter
from videojob.transcoder.subtitle_files import PreparedSubtitles, prepare

STDERR_LINES = 40  # what we keep of FFmpeg's stderr for the error message
TERM_GRACE = 5.0  # seconds FFmpeg gets to finish writing after SIGTERM before SIGKILL

# FFmpeg/driver messages that mean "no usable NVENC here": not worth retrying on this node.
NVENC_FAILURE_PATTERN = re.compile(
    r"Cannot load libcuda|Cannot load libnvidia-encode|No capable devices found|OpenEncodeSessionEx failed"
    r"|No NVENC capable devices found|Driver does not support the required nvenc API version"
    r"|CUDA_ERROR_NO_DEVICE|cuInit\(0\) failed|cuda_dl->cuInit|nvenc.*(?:not supported|unsupported device)",
    re.IGNORECASE,
)
NVENC_UNAVAILABLE_MESSAGE = "NVENC is not available on this node: "
# A muxer refusing a stream's codec ("[mov @ 0x..] vp9 only supported in MP4", "Could not find tag for codec
# pcm_s16le in stream #0, codec not currently supported in container"): the output container, not the input.
MUXER_REFUSAL = re.compile(
    r"^\[(?P<muxer>mp4|mov|webm|matroska|ipod) @ 0x[0-9a-f]+\] (?P<message>.*)$"
    r"|^\[\w+ @ 0x[0-9a-f]+\] (?P<tag>Could not find tag for codec .*)$"
)
INPUT_PROBLEM = re.compile(
    r"Invalid data found when processing input|moov atom not found|Error while decoding|could not find codec"
    r"|Invalid argument|No such file or directory|Stream specifier .* matches no streams|does not contain any stream",
    re.IGNORECASE,
)


@dataclass
class Job:
    """Everything one run needs. `local_inputs`/`output_dir` switch to local files (the --local mode).

    `hardware` is what to encode with (the operator's choice); `hardware_requested` what the user asked for in the
    spec (None: the same). With `auto` requested, a node that cannot start NVENC falls back to the CPU."""

    spec: VideoJobSpec
    workdir: Path
    hardware: str = "cpu"
    hardware_requested: str | None = None
    policy: InputPolicy = field(default_factory=InputPolicy)
    reporter: Reporter = field(default_factory=NullReporter)
    local_inputs: Mapping[str, Path] | None = None
    output_dir: Path | None = None
    deadline_seconds: float | None = None
    model_dirs: Mapping[str, str] = field(default_factory=dict)
    s3: Any = None
    # The VideoJob that writes the outputs (None by hand or --local): its identity goes into each object's metadata,
    # and its writes never replace another's object unless its spec says overwrite (storage.claim_outputs).
    owner: storage.Owner | None = None
    conditions: dict[str, dict[str, str]] = field(default_factory=dict)  # output URI -> write condition
    uploaded: list[str] = field(default_factory=list)  # what this run wrote, in order
    chunking: Chunking | None = None  # a part of a chunked job; None: the whole job

    def write_args(self, uri: str) -> dict[str, Any]:
        """The metadata and condition of a write to `uri`."""
        if self.owner is None:
            return {}
        return {"metadata": self.owner.metadata(), "condition": self.conditions.get(uri, {"IfNoneMatch": "*"})}


@dataclass(frozen=True)
class Chunking:
    """This pod's part of a chunked job: segment `index` of at most `count` (the Indexed Job), or, with `index`
    None, the join. `store` is where segments wait for the join: an s3:// prefix, or a local directory (--local)."""

    count: int
    index: int | None
    store: str


class Stopped(Transient):
    """The runner was told to stop (SIGTERM: the Job was cancelled or the pod evicted)."""

    reason = Reason.TERMINATED


# ---------------------------------------------------------------------------------------------------------------
# FFmpeg


class FFmpegRun:
    """One FFmpeg process; `stop()` may be called from a signal handler or a timer."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.process: subprocess.Popen[str] | None = None
        self.stop_reason: str | None = None

    def stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()

    def run(self, parser: ProgressParser | None, reporter: Reporter, deadline: float | None) -> None:
        timer = None
        try:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                bufsize=1,
                env=child_env(),  # no credentials for FFmpeg
            )
        except OSError as e:
            raise Unsupported(f"cannot start {self.argv[0]}: {e}", reason=Reason.FFMPEG_MISSING) from None
        reader = threading.Thread(target=self._drain_stderr, daemon=True)
        reader.start()
        if deadline is not None:
            timer = threading.Timer(max(0.0, deadline - time.monotonic()), self.stop, args=("deadline",))
            timer.daemon = True
            timer.start()
        try:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                if parser is not None:
                    percent = parser.feed(line)
                    if percent is not None:
                        reporter.report(min(percent, 99.0))
            self.process.wait()
        finally:
            if timer is not None:
                timer.cancel()
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            reader.join(timeout=5)
        self._check(self.process.returncode)

    def _drain_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            line = line.strip()
            if line:
                self.stderr.append(line[:500])

    def _check(self, returncode: int) -> None:
        if self.stop_reason == "deadline":
            raise Transient("ffmpeg was stopped at the job's deadline", reason=Reason.DEADLINE_EXCEEDED)
        if self.stop_reason is not None:
            raise Stopped(f"ffmpeg was stopped: {self.stop_reason}")
        if returncode == 0:
            return
        raise classify_failure(returncode, list(self.stderr))


def classify_failure(returncode: int, stderr: Sequence[str]) -> TranscodeError:
    """An FFmpeg exit → the error class and one line: NVENC trouble, bad media, a kill, or something else."""
    text = "\n".join(stderr)
    last = next((line for line in reversed(stderr) if not line.startswith("Conversion failed")), "")
    if NVENC_FAILURE_PATTERN.search(text):
        line = next(line for line in stderr if NVENC_FAILURE_PATTERN.search(line))
        return Unsupported(f"{NVENC_UNAVAILABLE_MESSAGE}{line}", reason=Reason.NVENC_UNAVAILABLE)
    if returncode < 0 or returncode in (137, 143):
        return Transient(
            f"ffmpeg was killed (status {returncode}): {last or 'no message'}", reason=Reason.FFMPEG_KILLED
        )
    for line in stderr:
        refusal = MUXER_REFUSAL.match(line)
        if refusal and (refusal.group("tag") or "support" in line):
            why = refusal.group("message") or refusal.group("tag")
            return BadInput(
                f"the output container cannot hold a stream of this job: {why}",
                reason=Reason.CODEC_NOT_SUPPORTED_BY_CONTAINER,
            )
    if INPUT_PROBLEM.search(text):
        return BadInput(f"ffmpeg cannot process the input: {last}", reason=Reason.FFMPEG_FAILED)
    return BadInput(f"ffmpeg failed (status {returncode}): {last or 'no message'}", reason=Reason.FFMPEG_FAILED)


# ---------------------------------------------------------------------------------------------------------------
# The job


def _open_inputs(
    job: Job, names: Sequence[str], streamed: Sequence[str], server: streaming.InputServer, early: _EarlyProbes
) -> tuple[dict[str, Path | Streamed], int]:
    """Local files (--local), inputs served by `server` (the `streamed` names, when their storage serves byte
    ranges), or files fetched whole (subtitles, HTTP(S) servers without ranges). Returns them and their bytes."""
    paths: dict[str, Path | Streamed] = {}
    total = 0
    for name in names:
        if job.local_inputs is not None:
            if name not in job.local_inputs:
                raise BadInput(
                    f"input {name}: no local file given (use --input {name}=PATH)", reason=Reason.INPUT_NOT_FOUND
                )
            path = Path(job.local_inputs[name])
            if not path.is_file():
                raise BadInput(f"input {name}: {path} is not a file", reason=Reason.INPUT_NOT_FOUND)
            paths[name] = path
            total += path.stat().st_size
            continue
        uri = job.spec.input(name).uri
        remote = streaming.open_input(uri, job.policy, job.s3) if name in streamed else None
        if remote is not None:
            paths[name] = Streamed(early.url(name, remote))
            total += remote.size
        else:
            dest = job.workdir / "in" / name
            total += storage.fetch(uri, dest, job.policy, job.s3)
            paths[name] = dest
    return paths, total


def _local(paths: Mapping[str, Path | Streamed], name: str) -> Path:
    path = paths[name]
    assert isinstance(path, Path), f"input {name} is a subtitle file, always fetched"
    return path


def _served(server: streaming.InputServer, error: TranscodeError | None = None) -> None:
    """Raise what went wrong reading an input for FFmpeg or ffprobe (FFmpeg may take a read error for the end of
    its input and exit 0), in place of `error`, FFmpeg's own view of it."""
    failure = server.error
    if failure is not None:
        raise failure from error
    if error is not None:
        raise error


def _prepare_subtitles(
    job: Job, paths: Mapping[str, Path | Streamed], names: Sequence[str]
) -> dict[str, PreparedSubtitles]:
    prepared: dict[str, PreparedSubtitles] = {}
    for name in names:
        prepared[name] = prepare(_local(paths, name).read_bytes(), f"input {name}")
    return prepared


class _EarlyProbes:
    """ffprobe started on each input that may stream before the runner has an S3 client: loading FFmpeg's libraries
    (~70 ms, most of a probe) then overlaps creating the client (~150 ms of Python), on another core. Each ffprobe
    opens a URL the server reserved for its input, and its request waits there until `probe` hands the opened input
    over: inputs are still read one at a time, in order, as by probing each after the last. An input that does not
    stream after all (an HTTP server without ranges: fetched whole) has its early ffprobe stopped and is probed as
    a file."""

    def __init__(self, job: Job, names: Sequence[str], server: streaming.InputServer) -> None:
        self.server = server
        self.urls: dict[str, str] = {}  # input name -> the URL reserved for it
        self.processes: dict[str, subprocess.Popen[bytes]] = {}  # input name -> its ffprobe, not asked yet
        self.opened: dict[str, streaming.RemoteInput] = {}  # opened, not handed to the server yet
        if job.local_inputs is not None:
            return
        for name in names:
            url = server.reserve()
            try:
                self.processes[name] = start_probe(Streamed(url), INPUT_FORMATS)
            except OSError:  # no ffprobe: the probe in its turn says so, as it would without this
                break
            self.urls[name] = url

    def url(self, name: str, remote: streaming.RemoteInput) -> str:
        """The URL input `name`, opened as `remote`, is served at."""
        if name not in self.urls:
            return self.server.add(remote)
        self.opened[name] = remote
        return self.urls[name]

    def probe(self, name: str, path: Path | Streamed) -> MediaFacts:
        """`probe(path)` for input `name`: the answer of its early ffprobe, when it has one."""
        process = self.processes.pop(name, None)
        remote = self.opened.pop(name, None)
        if process is None or remote is None:
            if process is not None:
                _stop(process)
            return probe(path, label=f"input {name}")
        self.server.fill(self.urls[name], remote)
        return finish_probe(process, f"input {name}")

    def close(self) -> None:
        """Stop the ffprobes not asked for: the run failed before it probed their inputs."""
        for process in self.processes.values():
            _stop(process)
        self.processes.clear()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.communicate()


def _probe_inputs(
    job: Job,
    paths: Mapping[str, Path | Streamed],
    names: Sequence[str],
    server: streaming.InputServer,
    early: _EarlyProbes,
) -> dict[str, MediaFacts]:
    facts: dict[str, MediaFacts] = {}
    for name in names:
        try:
            f = early.probe(name, paths[name])
        except BadInput as error:
            _served(server, error)
            raise
        _served(server)
        if f.duration is not None and f.duration > job.policy.max_seconds:
            raise BadInput(
                f"input {name} is {f.duration:.0f} s long, over the limit of {job.policy.max_seconds:.0f} s",
                reason=Reason.INPUT_TOO_LONG,
            )
        facts[name] = f
    return facts


def _transcribe(
    job: Job, step: planner.Transcription, deadline: float | None, server: streaming.InputServer
) -> list[Any]:
    from videojob.transcoder import stt

    _ffmpeg(step.extract, None, NullReporter(), deadline, server)
    cues = stt.transcribe(step.wav, stt.resolve_model_dir(step.model, job.model_dirs), step.language)
    text = stt.to_srt(cues)
    # libass needs at least one cue to open the file: an invisible one stands for "no speech"
    step.srt.write_text(text or "1\n00:00:00,000 --> 00:00:00,001\n\u200b\n", encoding="utf-8")
    return list(cues)


def _ffmpeg(
    argv: Sequence[str],
    parser: ProgressParser | None,
    reporter: Reporter,
    deadline: float | None,
    server: streaming.InputServer,
) -> None:
    try:
        FFmpegRun(argv).run(parser, reporter, deadline)
    except TranscodeError as error:
        _served(server, error)
        raise
    _served(server)


def _layout(the_plan: planner.Plan) -> streaming.Layout:
    """What the main artifact is made of: the file FFmpeg wrote, with an MP4/MOV index moved to the front."""
    if not the_plan.index_last:
        return streaming.whole_file(the_plan.output)
    with the_plan.output.open("rb") as f:

        def read(offset: int, n: int) -> bytes:
            f.seek(offset)
            return f.read(n)

        try:
            moved = mp4.faststart_layout(mp4.top_level_boxes(read, the_plan.output.stat().st_size), read)
        except mp4.NotMP4 as e:
            raise TranscodeError(f"the result is not the MP4 FFmpeg should have written: {e}") from None
    return streaming.Layout(moved.prefix, moved.body, moved.tail)


def _write_layout(source: Path, layout: streaming.Layout, dest: Path) -> tuple[int, str]:
    """Write the object `layout` describes to a local file (--local); returns its size and SHA-256."""
    digest = hashlib.sha256()
    partial = dest.with_name(dest.name + ".part")
    with source.open("rb") as f, partial.open("wb") as out:
        digest.update(layout.prefix)
        out.write(layout.prefix)
        for start, end in (layout.body, *([layout.tail] if layout.tail else [])):
            f.seek(start)
            remaining = end - start
            while remaining > 0:
                chunk = f.read(min(remaining, storage.HTTP_CHUNK))
                if not chunk:
                    raise TranscodeError(f"{source} is shorter than its layout")
                digest.update(chunk)
                out.write(chunk)
                remaining -= len(chunk)
    partial.replace(dest)
    return layout.size, digest.hexdigest()


def _deliver(job: Job, path: Path, filename: str, content_type: str) -> tuple[str, int]:
    if job.output_dir is not None:
        job.output_dir.mkdir(parents=True, exist_ok=True)
        dest = job.output_dir / filename
        if path.resolve() != dest.resolve():
            shutil.copyfile(path, dest)
        return dest.resolve().as_uri(), dest.stat().st_size
    uri = output_uri(job.spec.output.uri, filename)
    size = storage.upload(path, uri, content_type, job.s3, **job.write_args(uri))
    job.uploaded.append(uri)
    return uri, size


def _artifact(
    uri: str,
    path: Path,
    kind: str,
    content_type: str,
    facts: MediaFacts | None,
    stored: tuple[int, str] | None = None,
) -> Artifact:
    size, sha256 = stored or (path.stat().st_size, storage.sha256_file(path))
    return Artifact.model_validate(
        {
            "uri": uri,
            "kind": kind,
            "size": size,
            "sha256": sha256,
            "contentType": content_type,
            **(
                {
                    "duration": round(facts.duration, 3) if facts.duration is not None else None,
                    "width": facts.width,
                    "height": facts.height,
                    "fps": round(facts.fps, 3) if facts.fps is not None else None,
                    "videoCodec": facts.video_codec,
                    "audioCodec": facts.audio_codec,
                }
                if facts is not None
                else {}
            ),
        }
    )


def run(job: Job) -> TranscodeResult:
    """The whole job. On failure, nothing it wrote stays: the objects of this VideoJob (its uid in their metadata)
    at its output names are deleted, from this attempt or an earlier one; what cannot be deleted is named in the
    error's `leftovers` (the failure result lists them)."""
    with streaming.InputServer() as server:
        try:
            return _run(job, server)
        except BaseException as error:
            leftovers = _remove_outputs(job)
            if leftovers:
                error.leftovers = leftovers  # type: ignore[attr-defined]
            raise


def _remove_outputs(job: Job) -> list[str]:
    """Delete this VideoJob's objects at its output names; the URIs that may remain (a deletion that failed)."""
    if job.owner is None or job.output_dir is not None or job.s3 is None:
        return []
    uris = output_uris(job.spec)
    try:
        deleted = storage.delete_owned(uris, job.owner.uid, job.s3)
    except Exception as e:
        print(f"videojob-transcode: cannot delete what this job wrote: {' '.join(str(e).split())}", file=sys.stderr)
        return list(job.uploaded)
    if deleted:
        print(
            f"videojob-transcode: deleted {len(deleted)} object(s) this job had written: {', '.join(deleted)}",
            file=sys.stderr,
            flush=True,
        )
    return []


def _check_result(the_plan: planner.Plan, spec: VideoJobSpec, deadline: float | None) -> MediaFacts:
    """Take the thumbnail and probe the result; refuse a result without a picture."""
    if the_plan.thumbnail is not None:
        FFmpegRun(the_plan.thumbnail).run(None, NullReporter(), deadline)
        if the_plan.thumbnail_path is not None and not the_plan.thumbnail_path.is_file():
            asked = spec.output.thumbnail.at if spec.output.thumbnail else 0.0
            raise BadInput(
                f"output.thumbnail.at: the result has no frame at {asked:g} s to take the thumbnail from",
                reason=Reason.NO_THUMBNAIL,
            )
    out_facts = probe(the_plan.output, label="the result", formats=None)
    if not out_facts.has_video:  # e.g. every frame cut away by trims: never deliver a picture-less "video"
        raise BadInput(
            "the result has no video frames (check the inputs' trim start and duration)", reason=Reason.NO_VIDEO_FRAMES
        )
    return out_facts


def _start_upload(job: Job, the_plan: planner.Plan) -> streaming.StreamedUpload | None:
    """Upload the main result while FFmpeg writes it (not in --local mode)."""
    if job.output_dir is not None:
        return None
    uri = output_uri(job.spec.output.uri, the_plan.output_filename)
    return streaming.StreamedUpload(the_plan.output, uri, the_plan.content_type, job.s3, **job.write_args(uri)).start()


def _run(job: Job, server: streaming.InputServer) -> TranscodeResult:
    started = time.monotonic()
    deadline = started + job.deadline_seconds if job.deadline_seconds else None
    spec = job.spec
    job.workdir.mkdir(parents=True, exist_ok=True)
    (job.workdir / "out").mkdir(exist_ok=True)
    job.reporter.report(0.0)
    subtitle_names = planner.subtitle_inputs(spec)
    used = {name for op in spec.operations for name in op.input_refs()} | {spec.inputs[0].name}
    media_names = [i.name for i in spec.inputs if i.name in used and i.name not in subtitle_names]
    early = _EarlyProbes(job, media_names, server)
    try:
        if job.local_inputs is None and job.s3 is None:
            job.s3 = storage.s3_client_from_env()
        if job.output_dir is None:
            storage.check_output_bucket(spec.output.uri, job.s3)
            if job.owner is not None:  # before any work: an output another wrote fails now, not after the transcode
                job.conditions = storage.claim_outputs(output_uris(spec), job.owner, job.s3)

        names = [i.name for i in spec.inputs if i.name in used]
        paths, bytes_in = _open_inputs(job, names, media_names, server, early)
        prepared = _prepare_subtitles(job, paths, subtitle_names)
        subtitle_paths: dict[str, Path] = {}
        for name, sub in prepared.items():
            subtitle_paths[name] = job.workdir / f"subtitles-{name}{sub.burn_suffix}"
            subtitle_paths[name].write_text(sub.burn_text, encoding="utf-8")
        facts = _probe_inputs(job, paths, media_names, server, early)
    finally:
        early.close()

    media = {n: paths[n] for n in media_names}
    chunking = job.chunking
    if chunking is not None and chunking.index is not None:
        return _run_segment(job, chunking.index, facts, media, subtitle_paths, bytes_in, started, deadline, server)
    joined = _fetch_segments(job, facts) if chunking is not None else None

    def plan_for(hardware: str) -> planner.Plan:
        if joined is not None:
            made = planner.plan_join(spec, facts, media, job.workdir, *joined)
        else:
            made = planner.plan(spec, facts, media, hardware, job.workdir, subtitle_paths)
        for text_file in made.files:
            text_file.path.write_text(text_file.text, encoding="utf-8")
        return made

    the_plan = plan_for(job.hardware)
    generated: dict[int, list[Any]] = {}
    for step in the_plan.transcriptions:
        generated[step.op_index] = _transcribe(job, step, deadline, server)

    note = ""
    upload = _start_upload(job, the_plan)
    try:
        try:
            _ffmpeg(the_plan.main, ProgressParser(the_plan.duration), job.reporter, deadline, server)
        except Unsupported as error:
            fallback = encoders.fallback_hardware(job.hardware_requested or job.hardware, error)
            if fallback is None:
                raise
            # NVENC fails while opening the encoder, before the first frame: little is lost by starting over.
            why = " ".join(str(error).removeprefix(NVENC_UNAVAILABLE_MESSAGE).split())[:300]
            print(
                f"videojob-transcode: NVENC unavailable on this node ({why}); auto falls back to CPU encoding",
                file=sys.stderr,
                flush=True,
            )
            note = f"encoded on CPU: NVENC unavailable on its node ({why})"
            if upload is not None:
                upload.abort()
            the_plan = plan_for(fallback)  # transcriptions do not depend on the hardware: they are kept
            upload = _start_upload(job, the_plan)
            _ffmpeg(the_plan.main, ProgressParser(the_plan.duration), job.reporter, deadline, server)
        # The checks of the result (thumbnail, probe) run while its last parts upload; it appears only if they pass.
        # They start first: stopping the upload waits for a part in flight.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            checked = pool.submit(_check_result, the_plan, spec, deadline)
            if upload is not None:
                upload.stop()
            layout = _layout(the_plan)
            if upload is not None:
                stored = upload.finish(layout)
            out_facts = checked.result()
        if upload is not None:
            uri = upload.uri
            upload.commit()
            job.uploaded.append(uri)
        else:
            assert job.output_dir is not None
            job.output_dir.mkdir(parents=True, exist_ok=True)
            dest = job.output_dir / the_plan.output_filename
            stored = _write_layout(the_plan.output, layout, dest)
            uri = dest.resolve().as_uri()
    except BaseException:
        if upload is not None:
            upload.abort()  # no object appears for a failed run
        raise

    artifacts: list[Artifact] = [_artifact(uri, the_plan.output, "video", the_plan.content_type, out_facts, stored)]
    bytes_out = stored[0]
    if the_plan.thumbnail_path is not None:
        thumb = the_plan.thumbnail_path
        uri, size = _deliver(job, thumb, thumb.name, "image/jpeg")
        image = probe(thumb, label="the thumbnail", formats=None)
        still = MediaFacts(
            duration=None,
            format_name=image.format_name,
            has_video=True,
            width=image.width,
            height=image.height,
            video_codec=image.video_codec,
        )
        artifacts.append(_artifact(uri, thumb, "thumbnail", "image/jpeg", still))
        bytes_out += size
    for emitted in the_plan.emitted:
        path = job.workdir / "out" / emitted.filename
        path.write_text(_subtitle_text(emitted, prepared, generated), encoding="utf-8")
        content_type = "text/vtt" if emitted.fmt == "vtt" else "application/x-subrip"
        uri, size = _deliver(job, path, emitted.filename, content_type)
        artifacts.append(_artifact(uri, path, "subtitles", content_type, None))
        bytes_out += size

    if joined is not None:
        _drop_segments(job, joined[0])
        note = f"joined {len(joined[0])} segments encoded apart"
    job.reporter.report(100.0)
    return TranscodeResult(
        ok=True,
        message=note,
        artifacts=artifacts,
        bytes_in=bytes_in,
        bytes_out=bytes_out,
        seconds=round(time.monotonic() - started, 3),
        hardware=the_plan.hardware,
    )


# ---------------------------------------------------------------------------------------------------------------
# Chunked jobs: a segment's pod, and the segments' way to the join


def _segment_location(job: Job, index: int) -> str:
    assert job.chunking is not None
    name = planner.segment_filename(index)
    if job.output_dir is not None:
        return str(Path(job.chunking.store) / name)
    return output_uri(job.chunking.store, name)


def _run_segment(
    job: Job,
    index: int,
    facts: Mapping[str, MediaFacts],
    media: Mapping[str, Path | Streamed],
    subtitle_paths: Mapping[str, Path],
    bytes_in: int,
    started: float,
    deadline: float | None,
    server: streaming.InputServer,
) -> TranscodeResult:
    """Encode segment `index` and store it for the join. Every pod plans the same segments from the same facts;
    one whose index the video is too short for has nothing to do."""
    assert job.chunking is not None
    segments = planner.segments_for(job.spec, facts, job.chunking.count)
    if index >= len(segments):
        job.reporter.report(100.0)
        return TranscodeResult(
            ok=True,
            message=f"no segment {index}: the video makes {len(segments)}",
            bytes_in=0,
            seconds=round(time.monotonic() - started, 3),
            hardware="cpu",
        )
    the_plan = planner.plan_segment(job.spec, facts, media, job.hardware, job.workdir, segments[index], subtitle_paths)
    for text_file in the_plan.files:
        text_file.path.write_text(text_file.text, encoding="utf-8")
    _ffmpeg(the_plan.main, ProgressParser(the_plan.duration), job.reporter, deadline, server)
    location = _segment_location(job, index)
    if job.output_dir is not None:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(the_plan.output, location)
        size = the_plan.output.stat().st_size
    else:
        # a retried segment replaces its own earlier object, never another's (the uid in its metadata)
        if job.owner is not None:
            job.conditions.update(storage.claim_outputs([location], job.owner, job.s3))
        size = storage.upload(the_plan.output, location, the_plan.content_type, job.s3, **job.write_args(location))
    job.reporter.report(100.0)
    segment = segments[index]
    return TranscodeResult(
        ok=True,
        message=f"segment {index + 1} of {len(segments)} ({segment.start:.3f} s to {segment.end:.3f} s)",
        bytes_in=bytes_in,
        bytes_out=size,
        seconds=round(time.monotonic() - started, 3),
        hardware=the_plan.hardware,
    )


def _fetch_segments(job: Job, facts: Mapping[str, MediaFacts]) -> tuple[tuple[planner.Segment, ...], list[Path]]:
    """The join's segments, as local files (fetched from the store)."""
    assert job.chunking is not None
    segments = planner.segments_for(job.spec, facts, job.chunking.count)
    files: list[Path] = []
    for segment in segments:
        location = _segment_location(job, segment.index)
        if job.output_dir is not None:
            path = Path(location)
            if not path.is_file():
                raise Transient(f"segment {segment.index} is missing at {location}", reason=Reason.SEGMENT_MISSING)
        else:
            path = job.workdir / "segments" / planner.segment_filename(segment.index)
            try:
                storage.fetch(location, path, job.policy, job.s3)
            except BadInput as error:  # the Indexed Job succeeded, so it was there: storage trouble, retried
                raise Transient(f"segment {segment.index}: {error}", reason=Reason.SEGMENT_MISSING) from None
        files.append(path)
    return segments, files


def _drop_segments(job: Job, segments: Sequence[planner.Segment]) -> None:
    """Remove the segments once the result is stored: by name, and only objects carrying this VideoJob's uid (no
    listing, which would need s3:ListBucket). A failure to is only logged: a lifecycle rule may do it."""
    assert job.chunking is not None
    try:
        if job.output_dir is not None:
            shutil.rmtree(job.chunking.store, ignore_errors=True)
        elif job.owner is not None:
            storage.delete_owned([_segment_location(job, s.index) for s in segments], job.owner.uid, job.s3)
    except Exception as e:
        print(
            f"videojob-transcode: cannot remove the segments under {job.chunking.store}: {' '.join(str(e).split())}",
            file=sys.stderr,
            flush=True,
        )


def _subtitle_text(
    emitted: planner.EmittedSubtitles, prepared: Mapping[str, PreparedSubtitles], generated: Mapping[int, list[Any]]
) -> str:
    from videojob.transcoder import stt

    if emitted.source_input is not None:
        return prepared[emitted.source_input].emit(emitted.fmt)
    cues = generated.get(emitted.op_index, [])
    return stt.to_vtt(cues) if emitted.fmt == "vtt" else stt.to_srt(cues)


# ---------------------------------------------------------------------------------------------------------------
# The result


def result_json(result: TranscodeResult, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """Compact JSON under `limit` bytes: the message is cut first, then artifacts beyond what fits are left out
    (the message says how many)."""
    text = result.model_dump_json(by_alias=True, exclude_none=True)
    if len(text.encode()) < limit:
        return text
    message = result.message
    if len(message) > 300:
        message = message[:297] + "..."
    artifacts = list(result.artifacts)
    dropped = 0
    while True:
        note = f" ({dropped} more artifacts not listed)" if dropped else ""
        trimmed = result.model_copy(update={"message": (message + note)[:1024], "artifacts": artifacts})
        text = trimmed.model_dump_json(by_alias=True, exclude_none=True)
        if len(text.encode()) < limit or not artifacts:
            return text
        artifacts.pop()
        dropped += 1


def failure_result(error: TranscodeError, seconds: float = 0.0, leftovers: Sequence[str] = ()) -> TranscodeResult:
    message = " ".join(str(error).split())
    return TranscodeResult(
        ok=False,
        reason=error.reason[:64],
        message=message[:1024],
        seconds=round(seconds, 3),
        leftovers=list(leftovers)[:16],
    )
