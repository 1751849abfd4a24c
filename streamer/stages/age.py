"""age encryption, streamed, with keys users already have.

Recipients may be X25519 (``age1…``), ``ssh-ed25519`` or ``ssh-rsa`` public keys; identities
are age secret keys or unencrypted OpenSSH private keys, read from a file or from the
``AGE_IDENTITY`` environment variable. pyrage pulls from a reader and pushes to a writer in
pieces of 8-64 KiB, which the wrappers here move in blocks of :data:`BLOCK` bytes: neither side
ever holds the whole payload, and neither pays a Python call chain per piece. Which kind of
key a recipient is, and the message when it is none, come from :mod:`streamer.recipients`,
which the generator checks recipients with.

pyrage reports a failure of our own reader or writer as its own generic error; the wrappers
here keep the original exception so the caller sees *why* (the command failed, S3 failed)
instead of "encryption failed".
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import pyrage

from streamer.errors import ConfigError, EncryptionError
from streamer.recipients import preview, recipient_kind

__all__ = [
    "AGE_MAGIC",
    "Identity",
    "Recipient",
    "decrypt",
    "encrypt",
    "load_identities",
    "parse_identities",
    "parse_recipient",
    "read_recipients_file",
]

#: The first bytes of every binary age file; armored files start with ``ARMOR_MAGIC``.
AGE_MAGIC = b"age-encryption.org/v1\n"
ARMOR_MAGIC = b"-----BEGIN AGE ENCRYPTED FILE-----"

Recipient = Any  # pyrage.x25519.Recipient | pyrage.ssh.Recipient (no stubs)
Identity = Any  # pyrage.x25519.Identity | pyrage.ssh.Identity


def parse_recipient(text: str) -> Recipient:
    """Parse one recipient; ConfigError says what shape was expected."""
    text = text.strip()
    kind = recipient_kind(text)
    try:
        if kind == "x25519":
            return pyrage.x25519.Recipient.from_str(text)
        return pyrage.ssh.Recipient.from_str(text)
    except pyrage.RecipientError as exc:
        raise ConfigError(f"recipient {preview(text)} is not a valid key: {exc}") from exc


def _read_key_file(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        # Never quote the bytes: they may be a secret's.
        raise ConfigError(f"{what} {str(path)!r} is not a text file of keys") from exc


def read_recipients_file(path: Path) -> list[Recipient]:
    """Recipients from a file, one per line; blank lines and ``#`` comments are skipped."""
    lines = _read_key_file(path, "recipients file").splitlines()
    recipients = [
        parse_recipient(line) for line in lines if line.strip() and not line.startswith("#")
    ]
    if not recipients:
        raise ConfigError(f"recipients file {str(path)!r} has no recipients")
    return recipients


def parse_identities(text: str, origin: str) -> list[Identity]:
    """Identities from the text of an identity file (age keys, or one OpenSSH private key)."""
    if "-----BEGIN OPENSSH PRIVATE KEY-----" in text or "-----BEGIN RSA PRIVATE KEY-----" in text:
        try:
            return [pyrage.ssh.Identity.from_buffer(text.encode())]
        except pyrage.IdentityError as exc:
            raise ConfigError(
                f"{origin}: not a usable SSH private key ({exc}); "
                "passphrase-protected keys are not supported"
            ) from exc
    identities = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError as exc:
            # The line may be a secret with a typo: say where, never what.
            raise ConfigError(f"{origin}: line {number} is not an age identity") from exc
    if not identities:
        raise ConfigError(f"{origin} holds no identity (expected AGE-SECRET-KEY-1… lines)")
    return identities


def load_identities(files: Iterable[Path], env_value: str | None) -> list[Identity]:
    """Every identity from ``files`` and from the AGE_IDENTITY environment value."""
    identities: list[Identity] = []
    for path in files:
        text = _read_key_file(path, "identity file")
        identities += parse_identities(text, f"identity file {str(path)!r}")
    if env_value:
        identities += parse_identities(env_value, "AGE_IDENTITY")
    return identities


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Writable(Protocol):
    def write(self, data: bytes | memoryview, /) -> int | None: ...


#: How much our side of pyrage moves per call. pyrage reads 8 KiB at a time and writes 8 KiB
#: (decrypting) or 64 KiB (encrypting); passing each piece through the storage reader or the
#: next stage would cost a Python call chain per piece.
BLOCK = 1 << 20


class _KeepErrors:
    """Remembers the first exception our own reader or writer raised inside pyrage."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def reader(self, inner: _Readable) -> BinaryIO:
        """``inner`` read a BLOCK at a time, handed to pyrage in the pieces it asks for."""
        return _BlockReader(inner, self)  # type: ignore[return-value]

    def writer(self, inner: _Writable) -> _BlockWriter:
        """pyrage's small writes, passed on to ``inner`` a BLOCK at a time; ``flush()`` at
        the end passes on the rest."""
        return _BlockWriter(inner, self)

    def keep(self, exc: BaseException) -> None:
        self.error = self.error or exc


class _BlockReader(io.RawIOBase):
    def __init__(self, inner: _Readable, errors: _KeepErrors) -> None:
        self._inner = inner
        self._errors = errors
        self._block = memoryview(b"")

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self._block:
            try:
                self._block = memoryview(self._inner.read(BLOCK))
            except BaseException as exc:
                self._errors.keep(exc)
                raise
        out = self._block if size < 0 else self._block[:size]
        self._block = self._block[len(out) :]
        return out.tobytes()


class _BlockWriter(io.RawIOBase):
    def __init__(self, inner: _Writable, errors: _KeepErrors) -> None:
        self._inner = inner
        self._errors = errors
        self._pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._pending += data
        if len(self._pending) >= BLOCK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._pending:
            data, self._pending = self._pending, bytearray()
            try:
                self._inner.write(memoryview(data))
            except BaseException as exc:
                self._errors.keep(exc)
                raise

    def close(self) -> None:
        # IOBase.close() flushes, and the garbage collector closes: after a failure, what
        # was held back must be dropped, never passed on.
        self._pending = bytearray()
        super().close()


def encrypt(reader: _Readable, writer: _Writable, recipients: Sequence[Recipient]) -> None:
    """Encrypt everything ``reader`` gives to ``recipients``, writing the age file to ``writer``."""
    keep = _KeepErrors()
    try:
        out = keep.writer(writer)
        pyrage.encrypt_io(keep.reader(reader), out, list(recipients))
        out.flush()
    except Exception as exc:
        if keep.error is not None:
            raise keep.error from None
        raise EncryptionError(f"age encryption failed: {exc}") from exc


def decrypt(
    reader: _Readable, writer: _Writable, identities: Sequence[Identity], what: str
) -> None:
    """Decrypt the age file ``reader`` gives into ``writer``; ``what`` names it in errors.

    A binary file for X25519 identities is decrypted by :mod:`streamer.stages.age_x25519`
    (OpenSSL, a block at a time); any other file, or one whose header that module leaves
    alone, by pyrage, from its first byte.
    """
    # Imported here: only restore and verify decrypt, and a backup need not load OpenSSL.
    from streamer.stages import age_x25519

    keys = age_x25519.x25519_keys(identities)
    if keys is not None:
        opened = age_x25519.open_payload(reader, keys, BLOCK)
        if isinstance(opened, age_x25519.Payload):
            opened.decrypt(writer, BLOCK, what)
            return
        reader = opened
    _pyrage_decrypt(reader, writer, identities, what)


def _pyrage_decrypt(
    reader: _Readable, writer: _Writable, identities: Sequence[Identity], what: str
) -> None:
    keep = _KeepErrors()
    try:
        out = keep.writer(writer)
        pyrage.decrypt_io(keep.reader(reader), out, list(identities))
        out.flush()
    except Exception as exc:
        if keep.error is not None:
            raise keep.error from None
        if not isinstance(exc, pyrage.DecryptError):
            raise EncryptionError(
                f"{what} is corrupted or truncated: age authentication failed ({exc})"
            ) from exc
        if "No matching keys" in str(exc):
            raise EncryptionError(
                f"none of the given identities can decrypt {what}: it was encrypted to other "
                "recipients; pass the matching key with -i/--identity or AGE_IDENTITY"
            ) from exc
        raise EncryptionError(f"cannot decrypt {what}: {exc}") from exc
