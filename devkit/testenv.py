"""The local environment as its clients see it: where it is, what it exports, and waiting on a real condition.

`hack/testenv.py up` writes `.testenv/env` (KUBECONFIG, S3_ENDPOINT_URL, AWS_*, PATH); `load_testenv` reads it into
a `TestEnv`. The tests (through their fixtures), `hack/demo.py` and the benchmarks all start from here.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
TESTENV_SCRIPT = REPO / "hack" / "testenv.py"
DEFAULT_TESTENV_DIR = REPO / ".testenv"

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """wait_for() gave up; the message shows the last value the predicate returned (or raised)."""


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 60.0,
    interval: float = 0.25,
    message: str = "",
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll `predicate` until it returns a truthy value, and return that value.

    Exceptions of the types in `ignore` count as "not yet" (their repr is the last observed value); any other
    exception propagates at once. On timeout, fail with `message` and the last observed value.
    """
    deadline = time.monotonic() + timeout
    last: Any = "<predicate never ran>"
    while True:
        try:
            value = predicate()
        except ignore as e:
            last = f"raised {e!r}"
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"timed out after {timeout:g}s waiting for {message or predicate!r}; last observed: {last!r}"
            )
        time.sleep(interval)  # polling interval between real observations, not a wait for an outcome


@dataclass
class TestEnv:
    """What a test needs to talk to the local environment."""

    __test__ = False  # not a test class

    dir: Path
    kubeconfig: str
    s3_endpoint_url: str
    aws_access_key_id: str
    aws_secret_access_key: str
    aws_default_region: str
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def host_ip(self) -> str:
        """The address of this machine that pods reach (the control plane, MinIO and servers tests start)."""
        return self.variables["TESTENV_HOST_IP"]

    def pod_log(self, pod: Any, container: str | None = None) -> str:
        """The log of a pod's container (a V1Pod), as `kubectl logs` shows it; the first container by default."""
        from kubernetes import client, config
        from kubernetes.client.exceptions import ApiException

        container = container or pod.spec.containers[0].name
        api = client.CoreV1Api(config.new_client_from_config(config_file=self.kubeconfig))
        try:
            return str(api.read_namespaced_pod_log(pod.metadata.name, pod.metadata.namespace, container=container))
        except ApiException:
            return ""

    def subprocess_env(self) -> dict[str, str]:
        """os.environ plus the environment's variables (KUBECONFIG, S3_ENDPOINT_URL, AWS_*, PATH)."""
        return {**os.environ, **self.variables}


_EXPORT = re.compile(r"^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def parse_env_file(path: Path) -> dict[str, str]:
    """Read the `export NAME=value` lines of .testenv/env; "$PATH" in a value expands to the current PATH."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = _EXPORT.match(line.strip())
        if not m:
            continue
        value = "".join(shlex.split(m.group(2).replace('"$PATH"', shlex.quote(os.environ.get("PATH", "")))))
        out[m.group(1)] = value
    return out


def load_testenv(testenv_dir: Path) -> TestEnv:
    v = parse_env_file(testenv_dir / "env")
    return TestEnv(
        dir=testenv_dir,
        kubeconfig=v["KUBECONFIG"],
        s3_endpoint_url=v["S3_ENDPOINT_URL"],
        aws_access_key_id=v["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=v["AWS_SECRET_ACCESS_KEY"],
        aws_default_region=v["AWS_DEFAULT_REGION"],
        variables=v,
    )
