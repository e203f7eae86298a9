"""The chart's README is generated from Chart.yaml and the comments of values.yaml (hack/chart_readme.py, `make
chart-docs`): it must be up to date, and every value must be described."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "hack" / "chart_readme.py"
README = REPO / "charts" / "videojob-operator" / "README.md"


def test_the_chart_readme_is_generated_from_values_yaml() -> None:
    r = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-3000:]


def test_every_value_is_in_the_table() -> None:
    values = yaml.safe_load((REPO / "charts" / "videojob-operator" / "values.yaml").read_text())
    text = README.read_text()
    for key in values:
        assert f"| `{key}" in text, f"{key} is not in the chart README"
    assert "| `crds.install` | bool | `true` |" in text
    assert '| `s3.auth` | string | `"secret"` |' in text


def test_a_value_without_description_is_refused(tmp_path: Path) -> None:
    """The generator refuses an undocumented value instead of leaving it out of the table."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import chart_readme
    finally:
        sys.path.remove(str(SCRIPT.parent))
    entries = chart_readme.parse_comments("# -- documented\na: 1\nb:\n  c: 2\n")
    assert [(e.path, e.description) for e in entries] == [("a", "documented"), ("b", ""), ("b.c", "")]
    import pytest

    with pytest.raises(SystemExit, match=r"b\.c"):
        chart_readme.documented(entries, {"a": 1, "b": {"c": 2}})
