"""Subtitle inputs checked and rewritten before libass sees them. Pure.

The `subtitles` filter opens its file through libavformat, which guesses the format from the content; a file
that claims to be subtitles could be a playlist or a concat script that makes FFmpeg open other files. So a
subtitle input is read here first: it must be UTF-8 (or Latin-1) text that is SRT, WebVTT or ASS/SSA. SRT and
WebVTT are parsed into cues and written back as clean SRT (the bytes FFmpeg reads are ours); ASS/SSA must start
with `[Script Info]`, hold an `[Events]` section and no binary, and is passed through (its styling is the point).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from videojob.transcoder.stt import Cue, SubtitleSyntaxError, parse_srt, parse_vtt, to_srt, to_vtt

SubtitleKind = Literal["srt", "vtt", "ass"]
MAX_SUBTITLE_BYTES = 16 * 1024 * 1024
_BINARY = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_ASS_TAGS = re.compile(r"\{[^}]*\}")


@dataclass(frozen=True)
class PreparedSubtitles:
    kind: SubtitleKind  # what the input was
    burn_text: str  # the file to hand to the subtitles filter
    burn_suffix: str  # ".srt" or ".ass"
    cues: tuple[Cue, ...]  # for emitting .srt / .vtt artifacts

    def emit(self, fmt: str) -> str:
        return to_vtt(self.cues) if fmt == "vtt" else to_srt(self.cues)


def decode_text(data: bytes, name: str) -> str:
    if len(data) > MAX_SUBTITLE_BYTES:
        raise SubtitleSyntaxError(f"{name}: a subtitle file over {MAX_SUBTITLE_BYTES} bytes is refused")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # the other encoding old SRT files come in; every byte decodes
    if _BINARY.search(text):
        raise SubtitleSyntaxError(f"{name} is not a text subtitle file (SRT, WebVTT, ASS/SSA): it holds binary data")
    return text


def sniff(text: str) -> SubtitleKind | None:
    head = text.lstrip("\ufeff \t\r\n")
    if head.startswith("WEBVTT"):
        return "vtt"
    if head.lower().startswith("[script info]"):
        return "ass"
    first = head.split("\n", 2)
    if first and (first[0].strip().isdigit() or "-->" in first[0]):
        return "srt"
    return None


def parse_ass(text: str, name: str) -> list[Cue]:
    """Dialogue lines of an ASS/SSA file as cues (override tags removed, `\\N` as a line break)."""
    if "[events]" not in text.lower():
        raise SubtitleSyntaxError(f"{name}: an ASS/SSA file needs an [Events] section")
    fields: list[str] = []
    cues: list[Cue] = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "format" and not fields and "text" in value.lower():
            fields = [f.strip().lower() for f in value.split(",")]
        elif key == "dialogue" and fields:
            parts = value.strip().split(",", len(fields) - 1)
            if len(parts) != len(fields):
                raise SubtitleSyntaxError(f"{name}: malformed Dialogue line {line[:60]!r}")
            row = dict(zip(fields, parts, strict=True))
            body = _ASS_TAGS.sub("", row.get("text", "")).replace("\\N", "\n").replace("\\n", "\n").replace("\\h", " ")
            cues.append(Cue(_ass_time(row.get("start", ""), name), _ass_time(row.get("end", ""), name), body))
    return cues


def _ass_time(value: str, name: str) -> float:
    m = re.match(r"^\s*(\d+):([0-5]\d):([0-5]\d)[.:](\d{1,3})\s*$", value)
    if not m:
        raise SubtitleSyntaxError(f"{name}: bad ASS time {value[:20]!r}")
    h, mi, s, frac = m.groups()
    return int(h) * 3600 + int(mi) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def prepare(data: bytes, name: str) -> PreparedSubtitles:
    """Check a subtitle input and give the file to burn. Raises SubtitleSyntaxError (BadInput) naming `name`."""
    text = decode_text(data, name)
    kind = sniff(text)
    if kind == "ass":
        cues = parse_ass(text, name)
        return PreparedSubtitles("ass", text, ".ass", tuple(cues))
    if kind == "vtt":
        cues = parse_vtt(text, name)
    elif kind == "srt":
        cues = parse_srt(text, name)
    else:
        raise SubtitleSyntaxError(
            f"{name} is not a subtitle file: expected SRT, WebVTT (WEBVTT) or ASS ([Script Info])"
        )
    if not cues:
        raise SubtitleSyntaxError(f"{name} holds no subtitles")
    return PreparedSubtitles(kind, to_srt(cues), ".srt", tuple(cues))
