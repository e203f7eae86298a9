"""`videojob-transcode`, the console script: `cli.main()` in a process of its own, which starts and ends quickly.

- Importing the runner (pydantic and the API models, the storage and streaming modules) allocates a few hundred
  thousand objects and frees almost none, so the cyclic garbage collector, run every 700 allocations, finds
  nothing to collect: it is off while they load, then what they made is frozen (later collections skip it).
- When `main()` returns, the result is written, the scratch directory removed and every thread that writes has
  been joined; tearing the interpreter down (freeing botocore's service model, pydantic's validators and every
  module) would only cost time. The standard streams are flushed and the process ends with `os._exit`. An
  exception out of `main()` (a bug, Ctrl-C) takes the ordinary way out, traceback included.
"""

from __future__ import annotations

import gc
import os
import sys


def main() -> None:
    gc.disable()
    try:
        from videojob.transcoder import cli
    finally:
        gc.enable()
    gc.freeze()
    code = cli.main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. a closed pipe: the exit status Python gives a failed flush at exit
        code = code or 120
    os._exit(code)


if __name__ == "__main__":
    main()
