"""How far a stream has got, for people (the log) and for Argo (``$ARGO_PROGRESS_FILE``).

Updates are cheap (a counter and a clock read per chunk); a line is logged and the progress
file rewritten at most every :data:`REPORT_EVERY` seconds.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from streamer.contract import Env

__all__ = ["REPORT_EVERY", "Progress", "human_bytes"]

REPORT_EVERY = 10.0  # seconds between progress lines
_LOG = logging.getLogger("streamer.progress")


def human_bytes(n: float) -> str:
    """``1536`` → ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Counts bytes of one stream; ``total`` (when known) makes the Argo progress a fraction."""

    def __init__(self, action: str, total: int | None = None, every: float = REPORT_EVERY) -> None:
        self.action = action
        self.total = total
        self.done = 0
        self._every = every
        self._started = time.monotonic()
        self._next = self._started + every
        path = os.environ.get(Env.ARGO_PROGRESS_FILE)
        self._file = Path(path) if path else None
        self._write_file(finished=False)

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._every
            self._report(now)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _report(self, now: float) -> None:
        rate = self.done / max(now - self._started, 1e-9)
        of = f" of {human_bytes(self.total)}" if self.total else ""
        _LOG.info("%s: %s%s, %s/s", self.action, human_bytes(self.done), of, human_bytes(rate))
        self._write_file(finished=False)

    def finish(self) -> None:
        self._write_file(finished=True)

    def _write_file(self, *, finished: bool) -> None:
        if self._file is None:
            return
        if self.total:
            done, total = (self.total if finished else min(self.done, self.total)), self.total
        else:
            done, total = (1 if finished else 0), 1
        try:
            self._file.write_text(f"{done}/{total}\n")
        except OSError as exc:  # progress is a nicety: never fail a backup over it
            _LOG.debug("cannot write progress file %s: %s", self._file, exc)
