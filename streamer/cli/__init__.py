"""The ``streamer`` command: parse, call one pipeline function, report.

User mistakes become usage errors (exit 2) before anything runs; failures print one line
``streamer: error: …`` (never a traceback, never a secret) and exit non-zero: a restore exits
with its command's code (or its ``--check``'s), a deadline with 124, a termination signal with
128 + N. With ``--outputs DIR`` a failure also writes why (``failure``, one of the contract's
reasons, and ``failureMessage``), without changing the error or its exit code.

SIGTERM and SIGINT are requests, not exceptions (:mod:`streamer.cli.signals`): the first kills
the command, stops the stream and aborts what is not complete, exactly once; later ones change
nothing. A signal that arrives once the outcome is settled (the backup's object was stored, the
restore command read everything and exited 0) leaves a complete run: the command says so, with
the object's URL, and exits 0, so the step's outputs are kept. The modules, by job:
:mod:`~streamer.cli.commands` (the commands), :mod:`~streamer.cli.options` (the shared options
and the objects they become), :mod:`~streamer.cli.signals` (signals as stop requests).
"""

from streamer.cli.commands import main

__all__ = ["main"]
