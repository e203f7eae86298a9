"""`make demo`, the README's first command, really works: hack/demo.py runs its chained VideoJob to Succeeded.

It runs against the session's environment (TESTENV_DIR) and uses the demo's own namespace and bucket, as a
developer's `make demo` would; it leaves them in place, as the demo does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import REPO, TestEnv

pytestmark = pytest.mark.e2e


def test_make_demo_runs_a_chained_videojob_to_succeeded(testenv: TestEnv, s3: Any) -> None:
    env = {**os.environ, "TESTENV_DIR": str(testenv.dir)}
    run = subprocess.run(
        [sys.executable, str(REPO / "hack" / "demo.py"), "--timeout", "300"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=420, check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert re.search(r"^promo-\d{6}\s+Succeeded\s+100\.0%", run.stdout, flags=re.M), output
    video = re.search(r"^\s+(s3://videojob-demo/out/promo-\d{6}/promo\.mp4)$", run.stdout, flags=re.M)
    assert video, output
    assert re.search(r"duration \d+\.\d+s, resolution \d+x\d+, codecs h264/aac", run.stdout), output
    bucket, key = video.group(1).removeprefix("s3://").split("/", 1)
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
