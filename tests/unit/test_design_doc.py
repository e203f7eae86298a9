"""docs/design.md's dependency table is pyproject.toml's dependencies, each with its group, and the decision it
records holds: no FFmpeg binding library is a dependency (our planner builds the command; see the doc)."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import REPO


def _name(requirement: str) -> str:
    """PEP 503 normalised project name of a requirement string."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def pyproject_dependencies() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {_name(r): "runtime" for r in project["dependencies"]}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        groups |= {_name(r): extra for r in requirements}
    return groups


def documented_dependencies() -> dict[str, str]:
    text = (REPO / "docs" / "design.md").read_text()
    section = text.split("## Dependencies", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|", section, flags=re.M)
    return {_name(name): group.strip() for name, group in rows if name != "package" and not name.startswith("---")}


def test_the_dependency_table_matches_pyproject() -> None:
    assert documented_dependencies() == pyproject_dependencies()


def test_no_ffmpeg_binding_library_is_a_dependency() -> None:
    assert not {"ffmpeg-python", "typed-ffmpeg", "typed-ffmpeg-v5", "ffmpeg-core"} & set(pyproject_dependencies())
