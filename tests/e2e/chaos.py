"""The chaos suite's measuring stick: VideoJobs submitted while a fault is injected, and one table row of what came
of them (tests/e2e/test_chaos.py has the scenarios; `make chaos` runs them at full size).

A row counts, per scenario:
- submitted: VideoJobs created (good ones, which must succeed, and bad ones, whose input does not exist, which must
  fail InputNotFound: a fault must neither fail the good nor rescue the bad);
- succeeded: good ones Succeeded with their artifact in S3 at the size the status names;
- failed right: bad ones Failed with the expected reason;
- lost: not finished when the scenario gave up waiting;
- duplicate Jobs: VideoJobs for which more than one Job (uid) was ever created;
- wrong final: finished in a phase or reason other than the expected, or Succeeded without its object;
- converge: seconds from the end of the last fault (scenarios without one: from the submission) until every
  VideoJob finished.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from devkit.harness import JobRecorder, VideoJobs, parse_s3_uri
from devkit.specs import copy_spec
from devkit.testenv import WaitTimeout, wait_for
from tests.conftest import TestEnv

FULL = os.environ.get("VIDEOJOB_CHAOS") == "full"
TERMINAL = ("Succeeded", "Failed", "Cancelled")
BAD_REASON = "InputNotFound"
COLUMNS = ("scenario", "submitted", "succeeded", "failed right", "lost", "duplicate Jobs", "wrong final",
           "converge s", "fault")  # fmt: skip


@dataclass
class Row:
    scenario: str
    submitted: int
    succeeded: int
    failed_right: int
    lost: int
    duplicates: int
    wrong: int
    converge_s: float
    fault: str
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicates or self.wrong) and self.succeeded + self.failed_right == self.submitted

    def cells(self) -> list[str]:
        return [self.scenario, str(self.submitted), str(self.succeeded), str(self.failed_right), str(self.lost),
                str(self.duplicates), str(self.wrong), f"{self.converge_s:.1f}", self.fault]  # fmt: skip


ROWS: list[Row] = []  # every scenario of this session, printed at its end (tests/e2e/conftest.py)


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Planned:
    name: str
    videojobs: VideoJobs
    good: bool


class Chaos:
    """Submits VideoJobs over namespaces, watches their Jobs, and scores the outcome."""

    def __init__(
        self, testenv: TestEnv, batch_v1: Any, s3: Any, bucket: str, input_uri: str, namespaces: dict[str, VideoJobs]
    ) -> None:
        self.testenv = testenv
        self.batch_v1 = batch_v1
        self.s3 = s3
        self.bucket = bucket
        self.input_uri = input_uri
        self.namespaces = namespaces
        self.planned: list[Planned] = []
        self.recorders: dict[str, JobRecorder] = {}
        self.unreadable: list[str] = []  # lists that failed (during an API server or etcd fault)
        self._last: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._stack = ExitStack()

    def __enter__(self) -> Chaos:
        for ns in self.namespaces:
            self.recorders[ns] = self._stack.enter_context(JobRecorder(self.batch_v1, ns))
        return self

    def add_namespace(self, videojobs: VideoJobs) -> None:
        self.namespaces[videojobs.namespace] = videojobs
        self.recorders[videojobs.namespace] = self._stack.enter_context(JobRecorder(self.batch_v1, videojobs.namespace))

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def submit(self, prefix: str, good: int, bad: int = 0, **spec: Any) -> None:
        """`good` + `bad` VideoJobs, spread over the namespaces in turn, bad ones among the good."""
        namespaces = list(self.namespaces.values())
        kinds = [True] * good + [False] * bad
        if bad:
            step = max(len(kinds) // bad, 1)
            kinds = [True] * good
            for i in range(bad):
                kinds.insert(min(i * step + step // 2, len(kinds)), False)
        for i, is_good in enumerate(kinds):
            name = f"{prefix}-{i:03d}"
            videojobs = namespaces[i % len(namespaces)]
            source = self.input_uri if is_good else f"s3://{self.bucket}/in/absent-{name}.mp4"
            videojobs.create(name, copy_spec(source, f"s3://{self.bucket}/out/{name}/", **spec))
            self.planned.append(Planned(name, videojobs, is_good))

    def phases(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(namespace, name) -> status; a namespace the API server cannot list now (it may be the fault) keeps
        what was last read."""
        for videojobs in self.namespaces.values():
            try:
                items = videojobs.list()
            except Exception as e:
                self.unreadable.append(f"{videojobs.namespace}: {type(e).__name__}")
                continue
            self._last[videojobs.namespace] = {
                (videojobs.namespace, obj["metadata"]["name"]): obj.get("status") or {} for obj in items
            }
        return {key: status for statuses in self._last.values() for key, status in statuses.items()}

    def running(self) -> int:
        return sum(1 for s in self.phases().values() if s.get("phase") == "Running")

    def settle(self, timeout: float) -> tuple[dict[tuple[str, str], dict[str, Any]], float]:
        """Statuses once every planned VideoJob is terminal (or at the timeout: the rest count as lost), and when
        (monotonic) that was."""

        def all_finished() -> bool:
            statuses = self.phases()
            return all(statuses.get((p.videojobs.namespace, p.name), {}).get("phase") in TERMINAL for p in self.planned)

        with contextlib.suppress(WaitTimeout):
            wait_for(all_finished, timeout=timeout, interval=1, message="every VideoJob finished")
        return self.phases(), time.monotonic()

    def score(self, scenario: str, fault: str, since: float, timeout: float) -> Row:
        """Wait for every VideoJob to finish (up to `timeout`) and score them; `since`: when the last fault ended."""
        statuses, finished = self.settle(timeout)
        for recorder in self.recorders.values():  # every Job that exists is counted
            wait_for(recorder.caught_up, timeout=60, message=f"the Job watch of {recorder.namespace} caught up",
                     ignore=(ApiException,))  # fmt: skip
        row = Row(scenario, len(self.planned), 0, 0, 0, 0, 0, max(finished - since, 0.0), fault)
        owners: dict[tuple[str, str], set[str]] = {}
        for ns, recorder in self.recorders.items():
            for entry in recorder.snapshot():
                if entry.owner:
                    owners.setdefault((ns, entry.owner), set()).add(entry.uid)
        for p in self.planned:
            key = (p.videojobs.namespace, p.name)
            status = statuses.get(key, {})
            phase, reason = status.get("phase"), status.get("reason")
            if len(owners.get(key, ())) > 1:
                row.duplicates += 1
                row.problems.append(f"{key}: {len(owners[key])} Jobs")
            if phase not in TERMINAL:
                row.lost += 1
                row.problems.append(f"{key}: still {phase} ({reason}: {status.get('message')})")
            elif p.good and phase == "Succeeded" and self._artifact_ok(status):
                row.succeeded += 1
            elif not p.good and phase == "Failed" and reason == BAD_REASON:
                row.failed_right += 1
            else:
                row.wrong += 1
                row.problems.append(
                    f"{key}: {'good' if p.good else 'bad'} ended {phase} ({reason}: {status.get('message')})"
                )
        ROWS.append(row)
        return row

    def _artifact_ok(self, status: dict[str, Any]) -> bool:
        artifacts = status.get("artifacts") or []
        if len(artifacts) != 1:
            return False
        bucket, key = parse_s3_uri(artifacts[0]["uri"])
        try:
            head = self.s3.head_object(Bucket=bucket, Key=key)
        except Exception:
            return False
        return int(head["ContentLength"]) == int(artifacts[0].get("size") or -1)


@contextmanager
def in_background(action: Callable[[], str]) -> Iterator[dict[str, Any]]:
    """Run a fault in a thread; the dict gets "note" (what it did), "error" and "ended" (monotonic time)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["note"] = action()
        except BaseException as e:  # reported by the scenario, which fails on it
            result["error"] = e
        finally:
            result["ended"] = time.monotonic()

    thread = threading.Thread(target=run, name="chaos-fault", daemon=True)
    thread.start()
    try:
        yield result
    finally:
        thread.join(600)
