"""The plain data a run takes and gives back: its options, and the summary of what it moved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from streamer.contract import LOCK_OUTPUTS, OUTPUTS, Output
from streamer.errors import StorageError
from streamer.progress import human_bytes
from streamer.sources.base import Runner
from streamer.stages import age
from streamer.storage.base import LockStatus, iso_utc

__all__ = ["BackupOptions", "Check", "Compression", "RestoreOptions", "Summary"]

Compression = Literal["auto", "gzip", "none"]


@dataclass(frozen=True)
class BackupOptions:
    compress: bool = True
    level: int | None = None
    recipients: Sequence[age.Recipient] = ()
    deadline: float | None = None


@dataclass(frozen=True)
class RestoreOptions:
    identities: Sequence[age.Identity] = ()
    #: ``auto`` decompresses when the data starts with the gzip magic.
    compression: Compression = "auto"
    deadline: float | None = None
    #: For verify: the SHA-256 the stored object must have.
    expected_sha256: str | None = None


@dataclass(frozen=True)
class Check:
    """A restore's check: ``argv`` run by ``runner`` once the restore succeeded; exit 0 passes."""

    argv: Sequence[str]
    runner: Runner


@dataclass(frozen=True)
class Summary:
    """What a backup wrote, or what a restore or verify read."""

    url: str
    path: str
    plaintext_bytes: int
    stored_bytes: int
    sha256: str
    duration_seconds: float
    compressed: bool
    encrypted: bool
    #: For a backup asked to lock its object: the lock the stored object was found to carry.
    lock: LockStatus | None = None

    def check_lock(self) -> None:
        """Raise StorageError if the object was asked to be locked and is not (it is stored)."""
        if self.lock is not None and not self.lock.locked:
            raise StorageError(self.lock.problem)

    def _lock_values(self) -> dict[str, str]:
        if self.lock is None:
            return {}
        until = self.lock.retain_until
        return {
            Output.RETAIN_UNTIL: iso_utc(until) if until is not None else "",
            Output.LEGAL_HOLD: str(self.lock.legal_hold).lower(),
            Output.LOCKED: str(self.lock.locked).lower(),
        }

    def outputs(self) -> dict[str, str]:
        """One value per Argo output parameter (``--outputs DIR`` writes a file for each)."""
        values = {
            Output.PATH: self.path,
            Output.URL: self.url,
            Output.SIZE_IN_BYTES: str(self.stored_bytes),
            Output.SIZE: human_bytes(self.stored_bytes),
            Output.PLAINTEXT_BYTES: str(self.plaintext_bytes),
            Output.SHA256: self.sha256,
            Output.DURATION_SECONDS: f"{self.duration_seconds:.3f}",
            Output.COMPRESSED: str(self.compressed).lower(),
            Output.ENCRYPTED: str(self.encrypted).lower(),
        }
        values.update(self._lock_values())
        names = OUTPUTS + LOCK_OUTPUTS if self.lock is not None else OUTPUTS
        return {name: values[name] for name in names}

    def as_json(self) -> dict[str, object]:
        lock: dict[str, object] = {}
        if self.lock is not None:
            until = self.lock.retain_until
            lock = {
                "lockMode": self.lock.mode,
                Output.RETAIN_UNTIL: iso_utc(until) if until is not None else None,
                Output.LEGAL_HOLD: self.lock.legal_hold,
                Output.LOCKED: self.lock.locked,
            }
        return {
            "url": self.url,
            "path": self.path,
            "plaintextBytes": self.plaintext_bytes,
            "storedBytes": self.stored_bytes,
            "size": human_bytes(self.stored_bytes),
            "sha256": self.sha256,
            "durationSeconds": round(self.duration_seconds, 3),
            "compressed": self.compressed,
            "encrypted": self.encrypted,
            **lock,
        }
