"""Build the krew archive of `kubectl videojob` and keep plugins/krew/videojob.yaml's sha256 equal to it.

    python hack/krew.py            write dist/kubectl-videojob.tar.gz and the manifest's sha256
    python hack/krew.py --check    exit 1 when the manifest's sha256 is not the archive's

The archive is reproducible (fixed order, owner, mode and times; gzip without a timestamp), so the sha256 depends
only on the launcher script and the LICENSE note it carries.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KREW = ROOT / "plugins" / "krew"
MANIFEST = KREW / "videojob.yaml"
FILES = {"kubectl-videojob": 0o755}
ARCHIVE = ROOT / "dist" / "kubectl-videojob.tar.gz"


def archive_bytes() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, mode in sorted(FILES.items()):
            data = (KREW / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, 0, 0, 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def manifest_sha256(text: str) -> list[str]:
    return re.findall(r"sha256: ([0-9a-f]{64})", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    data = archive_bytes()
    digest = hashlib.sha256(data).hexdigest()
    text = MANIFEST.read_text()
    if args.check:
        wrong = [d for d in manifest_sha256(text) if d != digest]
        if wrong or not manifest_sha256(text):
            print(f"{MANIFEST.relative_to(ROOT)}: sha256 is not the archive's ({digest}): run python hack/krew.py")
            return 1
        return 0
    ARCHIVE.parent.mkdir(exist_ok=True)
    ARCHIVE.write_bytes(data)
    MANIFEST.write_text(re.sub(r"sha256: [0-9a-f]{64}", f"sha256: {digest}", text))
    print(f"wrote {ARCHIVE.relative_to(ROOT)} ({digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
