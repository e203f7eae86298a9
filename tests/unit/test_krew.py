"""The krew manifest of `kubectl videojob`: a valid Plugin whose sha256 is the archive's, and a launcher that
installs the version the manifest names."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from tests.conftest import REPO
from videojob import __version__

MANIFEST = REPO / "plugins" / "krew" / "videojob.yaml"
LAUNCHER = REPO / "plugins" / "krew" / "kubectl-videojob"


def test_the_manifest_is_a_krew_plugin_for_our_binary() -> None:
    plugin = yaml.safe_load(MANIFEST.read_text())
    assert plugin["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2" and plugin["kind"] == "Plugin"
    assert plugin["metadata"]["name"] == "videojob"  # kubectl videojob
    spec = plugin["spec"]
    assert spec["version"] == f"v{__version__}" and spec["shortDescription"] and spec["description"]
    for platform in spec["platforms"]:
        assert platform["bin"] == "kubectl-videojob"
        assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"])
        assert platform["uri"].endswith(f"/v{__version__}/kubectl-videojob.tar.gz")
        assert {"from": "kubectl-videojob", "to": "."} in platform["files"]


def test_the_manifest_sha256_is_the_archive_s() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "hack" / "krew.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_launcher_installs_the_manifest_s_version() -> None:
    text = LAUNCHER.read_text()
    assert f"VERSION={__version__}\n" in text and '"videojob-operator[cli]==$VERSION"' in text
    assert LAUNCHER.stat().st_mode & 0o111, "the launcher must be executable"
    assert subprocess.run(["sh", "-n", str(LAUNCHER)], check=False).returncode == 0
