"""Failures the transcoder tells apart: each maps to an exit code of the runtime contract and one clear line."""

from __future__ import annotations

from videojob.api.conditions import Reason
from videojob.api.runtime import ExitCode


class TranscodeError(Exception):
    """Base class: `reason` is a declared Reason for the VideoJob status, the message one line for a human."""

    exit_code: ExitCode = ExitCode.INTERNAL
    reason: Reason = Reason.INTERNAL_ERROR

    def __init__(self, message: str, reason: Reason | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class BadInput(TranscodeError):
    """The spec or the media cannot work, however often we retry: a missing object, an unreadable file, a refused
    URL, an input over the caps."""

    exit_code = ExitCode.BAD_INPUT
    reason = Reason.BAD_INPUT


class Unsupported(TranscodeError):
    """The node cannot do what was asked (e.g. NVENC without a GPU or encoder)."""

    exit_code = ExitCode.UNSUPPORTED
    reason = Reason.UNSUPPORTED


class Transient(TranscodeError):
    """Worth retrying: storage or network trouble, a killed process."""

    exit_code = ExitCode.TRANSIENT
    reason = Reason.TRANSIENT_ERROR
