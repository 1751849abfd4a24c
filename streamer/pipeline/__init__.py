"""Backup, restore and verify: the stream from a command to storage and back.

::

    backup:  command stdout ─► gzip ─► age ─► sha256 ─► storage writer (commit iff it succeeded)
    restore: storage reader ─► sha256 ─► [age -d] ─► [gunzip] ─► command stdin ─► exit status
             ─► [check command ─► exit status]
    verify:  storage reader ─► sha256 ─► [age -d] ─► [gunzip] ─► count

Each function takes the place to run commands (a :class:`~streamer.sources.base.Runner`), the
storage, and optionally a :class:`Stop` that carries termination signals in; nothing here knows
about processes, Kubernetes or S3. The modules, by job:

- :mod:`~streamer.pipeline.to_storage` backs up, :mod:`~streamer.pipeline.from_storage`
  restores and verifies;
- :mod:`~streamer.pipeline.outcome` decides how a run ends (exit code and message), purely;
- :mod:`~streamer.pipeline.stop` turns signals and the deadline into stop requests;
- :mod:`~streamer.pipeline.adapters` holds the counting, hashing, stop-checking file-likes;
- :mod:`~streamer.pipeline.model` holds the options and the summary.
"""

from streamer.pipeline.adapters import CHUNK
from streamer.pipeline.from_storage import restore, verify
from streamer.pipeline.model import BackupOptions, Check, Compression, RestoreOptions, Summary
from streamer.pipeline.outcome import DEADLINE_EXIT_CODE
from streamer.pipeline.stop import Stop
from streamer.pipeline.to_storage import backup

__all__ = [
    "CHUNK",
    "DEADLINE_EXIT_CODE",
    "BackupOptions",
    "Check",
    "Compression",
    "RestoreOptions",
    "Stop",
    "Summary",
    "backup",
    "restore",
    "verify",
]
