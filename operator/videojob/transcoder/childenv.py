"""The environment FFmpeg and ffprobe run with: the transcoder's, less anything that grants access to something.

The transcoder needs its S3 credentials (it builds its S3 client from them); the programs that parse untrusted media
do not. A crafted input that took FFmpeg over would find no keys in its environment (or, through /proc, in its
children's). Files are another matter: a token mounted for workload identity stays readable by the same user, which
is why the operator mounts none for the Kubernetes API (see controller/jobs.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Names of variables never handed to a child process: the AWS SDK's (keys, session tokens, role settings) and
# anything that looks like a secret.
_PREFIXES = ("AWS_",)
_MARKERS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE_KEY", "ACCESS_KEY", "API_KEY")


def is_sensitive(name: str) -> bool:
    upper = name.upper()
    return upper.startswith(_PREFIXES) or any(marker in upper for marker in _MARKERS)


def child_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: this process's) without the sensitive variables."""
    env = os.environ if environ is None else environ
    return {name: value for name, value in env.items() if not is_sensitive(name)}
