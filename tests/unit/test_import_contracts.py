"""The import contracts of pyproject.toml hold on the tree, and a new import across a layer breaks `make lint`.

Each case copies the tree to a temporary directory, adds one forbidden import, and runs the same `lint-imports`
that `make lint` runs: it must fail and name the offending import. The untouched copy passes, so a failure is
the added import's doing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
TREES = ("operator/videojob", "devkit", "tests", "hack", "bench")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # `operator/` first on the path: the copy's `videojob`, not the editable install's.
    env = {**os.environ, "PYTHONPATH": str(root / "operator")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    shutil.copy(REPO / "pyproject.toml", root)
    for tree in TREES:
        shutil.copytree(REPO / tree, root / tree, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_the_tree_keeps_every_contract(tree_copy: Path) -> None:
    r = lint_imports(tree_copy)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


@pytest.mark.parametrize(
    ("module", "statement", "breach"),
    [
        (
            "operator/videojob/controller/jobs.py",
            "from videojob.transcoder import planner",
            "videojob.controller.jobs -> videojob.transcoder.planner",
        ),
        (
            "operator/videojob/transcoder/planner.py",
            "from videojob.controller import settings",
            "videojob.transcoder.planner -> videojob.controller.settings",
        ),
        ("operator/videojob/api/models.py", "from videojob import storage", "videojob.api.models -> videojob.storage"),
        (
            "operator/videojob/storage.py",
            "from videojob.transcoder import probe",
            "videojob.storage -> videojob.transcoder.probe",
        ),
        ("hack/demo.py", "import tests.conftest", "hack.demo -> tests.conftest"),
        ("bench/end_to_end.py", "from tests.e2e import conftest", "bench.end_to_end -> tests.e2e.conftest"),
        ("devkit/harness.py", "from tests import conftest", "devkit.harness -> tests.conftest"),
        (
            "operator/videojob/controller/notify.py",
            "def _late() -> None:\n    from kubernetes.client.exceptions import ApiException",
            "videojob.controller.notify -> kubernetes",
        ),
    ],
    ids=[
        "the operator may not import the transcoder",
        "the transcoder may not import the operator",
        "the API models import nothing of ours",
        "storage is neutral: it may not import the transcoder",
        "the demo may not import the tests",
        "a benchmark may not import the tests",
        "the shared kit may not import the tests",
        "the operator image has no kubernetes package, not even for an import inside a function",
    ],
)
def test_an_import_across_layers_breaks_lint(tree_copy: Path, module: str, statement: str, breach: str) -> None:
    path = tree_copy / module
    original = path.read_text()
    path.write_text(f"{original}\n{statement}  # noqa\n")
    try:
        r = lint_imports(tree_copy)
    finally:
        path.write_text(original)
    assert r.returncode != 0, r.stdout
    assert breach in r.stdout, r.stdout


def test_make_lint_runs_the_contracts() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile[makefile.index("\nlint:") :].split("\n\n", 1)[0]
    assert "lint-imports" in recipe, recipe
