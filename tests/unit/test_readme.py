"""The README's first screen is a promise: its two commands exist and CI runs the same test command."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import REPO

FIRST_SCREEN_LINES = 25


def make_targets() -> dict[str, str]:
    """Documented Makefile targets -> their help text."""
    text = (REPO / "Makefile").read_text()
    return dict(re.findall(r"^([a-zA-Z0-9_-]+):[^\n]*?## (.+)$", text, flags=re.M))


def test_first_screen_has_the_demo_and_test_commands() -> None:
    first_screen = "\n".join((REPO / "README.md").read_text().splitlines()[:FIRST_SCREEN_LINES])
    assert "make demo" in first_screen
    assert "make test" in first_screen


def test_the_readme_commands_are_documented_make_targets() -> None:
    targets = make_targets()
    for target in ("demo", "test", "testenv-up", "testenv-down", "run", "crds", "lint"):
        assert target in targets, f"make {target} is missing or has no ## help text"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M), ".ci/run must run `make test`, the README's command"


def test_make_help_lists_the_targets() -> None:
    out = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)  # the help colours target names
    for target in ("demo", "test"):
        assert re.search(rf"^\s+{target}\s", plain, flags=re.M), plain
