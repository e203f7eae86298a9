"""Speech to text with the bundled Whisper model: espeak-ng speaks a known sentence, the transcoder writes it down.

espeak-ng at 130 words per minute is clear enough for the small bundled model to get most words right (checked:
this sentence comes back word for word); the assertion allows half the words wrong, so a different CPU's
rounding cannot make it flaky, while a broken pipeline (no cues, wrong timing, garbage text) still fails.
"""

from __future__ import annotations

import re
import subprocess
import wave
from pathlib import Path

import pytest

from videojob.errors import BadInput
from videojob.transcoder.stt import parse_srt, parse_vtt, resolve_model_dir, to_srt, to_vtt, transcribe

pytestmark = pytest.mark.stt

SENTENCE = "please send the report to the team by friday"


def _words(text: str) -> set[str]:
    return set(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _speak(path: Path, text: str) -> float:
    """Write `text` spoken by espeak-ng to a WAV file; return its duration in seconds."""
    subprocess.run(["espeak-ng", "-s", "130", "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return resolve_model_dir("bundled", {})


@pytest.mark.parametrize("language", ["auto", "en"])
def test_spoken_sentence_becomes_timed_cues(tmp_path: Path, model_dir: Path, language: str) -> None:
    speech = tmp_path / "speech.wav"
    duration = _speak(speech, SENTENCE)

    cues = transcribe(speech, model_dir, language=language)

    assert cues, "no cues for a clearly spoken sentence"
    assert all(0 <= c.start < c.end <= duration + 0.5 for c in cues), (cues, duration)
    heard = _words(" ".join(c.text for c in cues))
    spoken = _words(SENTENCE)
    assert len(heard & spoken) >= len(spoken) / 2, f"heard {sorted(heard)}, said {sorted(spoken)}"
    # What the runner stores as artifacts reads back as the same cues.
    assert parse_srt(to_srt(cues)) == cues
    assert parse_vtt(to_vtt(cues)) == cues


def test_speech_inside_a_video_is_timed_from_the_video_start(tmp_path: Path, model_dir: Path) -> None:
    speech = tmp_path / "speech.wav"
    duration = _speak(speech, SENTENCE)
    video = tmp_path / "talk.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=160x120:rate=10:duration={duration + 2:.2f}",
            "-i",
            str(speech),
            "-af",
            "adelay=1500:all=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            str(video),
        ],
        check=True,
        capture_output=True,
    )

    cues = transcribe(video, model_dir)

    assert cues
    assert cues[0].start >= 1.0, cues  # the speech starts 1.5 s in
    assert cues[-1].end <= 1.5 + duration + 0.5, cues


def test_silence_gives_no_cues(tmp_path: Path, model_dir: Path) -> None:
    tone = tmp_path / "tone.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=16000:cl=mono",
            "-t",
            "2",
            str(tone),
        ],
        check=True,
        capture_output=True,
    )
    assert transcribe(tone, model_dir) == []


def test_video_without_audio_is_bad_input(tmp_path: Path, model_dir: Path) -> None:
    video = tmp_path / "mute.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=10:duration=1",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            str(video),
        ],
        check=True,
        capture_output=True,
    )
    with pytest.raises(BadInput, match=r"mute\.mp4 has no audio stream"):
        transcribe(video, model_dir)


def test_a_language_the_model_cannot_understand_is_bad_input(tmp_path: Path, model_dir: Path) -> None:
    # The bundled model is English-only: faster-whisper would silently fall back to English.
    speech = tmp_path / "speech.wav"
    _speak(speech, "hello")
    with pytest.raises(BadInput, match="understands only English; language 'de'") as caught:
        transcribe(speech, model_dir, language="de")
    assert caught.value.reason == "UnsupportedLanguage"
