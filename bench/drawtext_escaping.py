"""Escaping alone: each hostile string put into the graph as `drawtext=text=<escaped>`, against the literal frame.

The literal reference is `drawtext=textfile=<the string's bytes>:expansion=none` (nothing escaped). The strings are
the corpus of devkit/hostile.py (the hostile-string tests' own) plus leading whitespace. Escapers:

- ours: `videojob.transcoder.escape.filter_value`, always;
- the `ffmpeg` package on the path, if any: typed-ffmpeg (`.drawtext(text=...)`) or ffmpeg-python
  (`.drawtext(text=...)`). Both install a package named `ffmpeg`, so measure one per run:

    .venv/bin/pip install --target /tmp/typed-ffmpeg typed-ffmpeg==4.6.2
    .venv/bin/pip install --target /tmp/ffmpeg-python ffmpeg-python==0.2.0
    PYTHONPATH=/tmp/typed-ffmpeg .venv/bin/python bench/drawtext_escaping.py
    PYTHONPATH=/tmp/ffmpeg-python .venv/bin/python bench/drawtext_escaping.py

One 320x120 frame per rendering, compared by framemd5 (see docs/design.md).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "operator"), str(REPO)]

from devkit.hostile import HOSTILE  # noqa: E402
from videojob.transcoder.escape import filter_value  # noqa: E402

CORPUS = [*HOSTILE, "  two leading spaces", " \t"]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
DRAW = {"expansion": "none", "fontfile": FONT, "fontsize": 28, "fontcolor": "white", "x": 16, "y": 16}
OPTIONS = ":".join(f"{k}={v}" for k, v in DRAW.items())


def framemd5(base: Path, args: list[str]) -> str:
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(base), *args,
         "-frames:v", "1", "-f", "framemd5", "-"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return "error: " + done.stderr.strip()[-100:]
    return done.stdout.strip().splitlines()[-1].rsplit(",", 1)[1].strip()


def ours(base: Path, text: str) -> list[str]:
    return ["-filter_complex", f"[0:v]drawtext=text={filter_value(text)}:{OPTIONS}[o]", "-map", "[o]"]


def library() -> tuple[str, Callable[[Path, str], list[str]]] | None:
    try:
        import ffmpeg
    except ImportError:
        return None
    if hasattr(ffmpeg, "filters") and hasattr(ffmpeg.filters, "concat"):  # typed-ffmpeg

        def typed(base: Path, text: str) -> list[str]:
            stream = ffmpeg.input(str(base)).video.drawtext(text=text, **DRAW)
            argv: list[str] = ffmpeg.output(stream, filename="-").compile()
            return argv[argv.index("-filter_complex") : -1]

        return "typed-ffmpeg", typed

    def python(base: Path, text: str) -> list[str]:  # ffmpeg-python
        argv: list[str] = ffmpeg.input(str(base)).drawtext(text=text, **DRAW).output("-").get_args()
        return argv[argv.index("-filter_complex") : -1]

    return "ffmpeg-python", python


def main() -> None:
    escapers: list[tuple[str, Callable[[Path, str], list[str]]]] = [("ours (filter_value)", ours)]
    found = library()
    if found is None:
        print("no `ffmpeg` package importable: measuring ours alone (see this file's docstring)")
    else:
        escapers.append(found)
    with tempfile.TemporaryDirectory() as tmp:
        base, literal = Path(tmp) / "base.mkv", Path(tmp) / "literal.txt"
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=navy:s=320x120:r=1:d=1",
             "-c:v", "ffv1", "-pix_fmt", "yuv420p", str(base)],
            check=True,
        )  # fmt: skip
        references = []
        for text in CORPUS:
            literal.write_bytes(text.encode())
            references.append(framemd5(base, ["-vf", f"drawtext=textfile={literal}:{OPTIONS}"]))
        for name, escape in escapers:
            differ = [t for t, ref in zip(CORPUS, references, strict=True) if framemd5(base, escape(base, t)) != ref]
            print(f"{name:22} {len(CORPUS) - len(differ)}/{len(CORPUS)} literal frames; differ: {differ}")


if __name__ == "__main__":
    main()
