"""`videojob-transcode` as a process (videojob.transcoder.entry): it ends by `os._exit`, so its exit status, its
one line on stderr and its result file must all be out before then."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import videojob
from videojob.api.runtime import ExitCode


def test_the_console_script_ends_with_main_s_status_line_and_result(tmp_path: Path) -> None:
    result = tmp_path / "result.json"
    package_root = str(Path(videojob.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
        "VIDEOJOB_SPEC": '{"inputs": [}',
        "VIDEOJOB_RESULT_PATH": str(result),
        "VIDEOJOB_WORKDIR": str(tmp_path / "work"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "videojob.transcoder.entry"], env=env, capture_output=True, text=True, timeout=120
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr
    assert len(lines) == 1 and lines[0].startswith("videojob-transcode: InvalidSpec: spec from VIDEOJOB_SPEC"), lines
    written = json.loads(result.read_text())
    assert written["ok"] is False and written["reason"] == "InvalidSpec" and written["message"] in lines[0]
