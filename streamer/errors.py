"""Every error the streamer raises on purpose, in one tree.

Callers (the CLI, the generator's checks, tests) catch :class:`StreamerError` and show its
message; third-party exceptions (botocore, kubernetes, pyrage, zlib) are translated where they
are raised, so none of them leaves the public API::

    StreamerError
    ├── ConfigError          bad flags, URLs, keys or templates; raised before any command runs
    ├── SourceError          the command could not be started, reached or waited for
    │   ├── StdinClosed      the restore command stopped reading its input
    │   └── CommandFailed    the command ran and failed (exit code, signal)
    │       ├── DeadlineExceeded
    │       └── CheckFailed  the restore succeeded and its ``--check`` command failed
    ├── CompressionError     the stream is not valid gzip, or is truncated
    ├── EncryptionError      age encryption or decryption failed (wrong key, corrupted object)
    ├── IntegrityError       the stored object is not what the caller expected (checksum)
    ├── Interrupted          a termination signal stopped the run before it was complete
    └── StorageError         the storage refused or failed (bucket, credentials, network)
        └── ObjectNotFound

Messages name the object and say what to do; they never contain a secret. Which of the
contract's failure reasons each error reports (``--outputs DIR/failure``) is decided in one
place, :func:`streamer.pipeline.outcome.failure_of`.
"""

from __future__ import annotations

__all__ = [
    "CheckFailed",
    "CommandFailed",
    "CompressionError",
    "ConfigError",
    "DeadlineExceeded",
    "EncryptionError",
    "IntegrityError",
    "Interrupted",
    "ObjectNotFound",
    "SourceError",
    "StdinClosed",
    "StorageError",
    "StreamerError",
]


class StreamerError(Exception):
    """Base of every error the streamer raises on purpose."""

    #: The process exit code the CLI uses for this error.
    exit_code: int = 1


class ConfigError(StreamerError):
    """A flag, URL, key or template is invalid; nothing has been started."""

    exit_code = 2


class SourceError(StreamerError):
    """The command could not be started, reached, or its exit status is unknown."""


class StdinClosed(SourceError):
    """The restore command closed its input before the whole stream was written."""


class CommandFailed(SourceError):
    """The command ran and did not succeed."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        #: The command's own exit code (128 + N for signal N), or 1 if it has none in 1-255.
        self.exit_code = exit_code if 0 < exit_code < 256 else 1


class DeadlineExceeded(CommandFailed):
    """The command was killed because the deadline passed."""


class CheckFailed(CommandFailed):
    """The restore command succeeded, and the check run after it exited non-zero."""


class CompressionError(StreamerError):
    """The data is not valid gzip, or ended before the gzip trailer."""


class EncryptionError(StreamerError):
    """age encryption or decryption failed: wrong or missing identity, corrupted object."""


class IntegrityError(StreamerError):
    """The stored object does not match what the caller expected."""


class Interrupted(StreamerError):
    """SIGTERM or SIGINT stopped the run before it was complete; exits with 128 + N."""

    def __init__(self, message: str, *, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class StorageError(StreamerError):
    """The storage refused or failed an operation."""


class ObjectNotFound(StorageError):
    """The object to restore or verify does not exist."""
