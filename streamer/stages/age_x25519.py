"""age decryption for X25519 identities, a block at a time, with OpenSSL's ChaCha20-Poly1305.

Why this exists: pyrage decrypts at ~0.9 GB/s of its own CPU, holding the GIL, and trades the
data with Python 8 KiB at a time (0.55 GB/s with those calls). The payload of an age file is
a simple construction (the age v1 format, https://age-encryption.org/v1): ChaCha20-Poly1305
chunks of 64 KiB under a key derived from the file key, which OpenSSL (``cryptography``) opens
at ~2.9 GB/s here. This module reads the file in blocks of :data:`~streamer.stages.age.BLOCK`
and writes the plaintext in blocks of the same size, a few Python calls per block: restoring
1 GB of SQL (416 MB stored) took 0.4 s less CPU, the decrypting thread's 1.2 s down to 0.8 s
(``bench/restore_db.py``, and the README's notes on where a restore's time goes).

The scope is deliberately narrow, so that every other case stays pyrage's: a binary (not
armored) file and identities that are all X25519 keys. The header is parsed and
authenticated here, as strictly as age and rage read it (canonical base64, the stanza
grammar, their order of trying keys); when anything in it is not what this module handles (an
armored file, an scrypt stanza, a malformed stanza, no stanza for these keys, a bad MAC, a
header past :data:`MAX_HEADER`), :func:`open_payload` says so and the caller hands the bytes
it consumed, replayed, to pyrage, which then decides exactly as before. Only once the header
is authenticated does this module own the outcome: each chunk is authenticated before any of
its plaintext is passed on, and a flipped, missing or extra byte in the payload is an
:class:`~streamer.errors.EncryptionError`, as pyrage's would be.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyrage
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from streamer.errors import EncryptionError

__all__ = ["MAX_HEADER", "Payload", "Replay", "open_payload", "x25519_keys"]

VERSION_LINE = b"age-encryption.org/v1"
#: A header longer than this is left to pyrage (a legitimate one holds a few stanzas).
MAX_HEADER = 1 << 20
#: Plaintext bytes per payload chunk, and the tag that seals each one.
CHUNK = 64 * 1024
TAG = 16
SEALED = CHUNK + TAG
NONCE = 16  #: the payload nonce that follows the header
_X25519_INFO = b"age-encryption.org/v1/X25519"
_BODY_COLUMNS = 64
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_VCHARS = re.compile(rb"[\x21-\x7e]+")


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Writable(Protocol):
    def write(self, data: bytes | memoryview, /) -> int | None: ...


@dataclass(frozen=True)
class _Key:
    secret: X25519PrivateKey
    public: bytes


def _bech32_payload(text: str, hrp: str) -> bytes | None:
    """The bytes a Bech32 string of human-readable part ``hrp`` carries (checksum not
    verified: pyrage has parsed the key already; :func:`x25519_keys` checks the result)."""
    text = text.strip().lower()
    if not text.startswith(hrp + "1"):
        return None
    try:
        values = [_BECH32.index(c) for c in text[len(hrp) + 1 : -6]]
    except ValueError:
        return None
    acc, bits, out = 0, 0, bytearray()
    for value in values:
        acc, bits = (acc << 5) | value, bits + 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    return bytes(out)


def x25519_keys(identities: Sequence[Any]) -> list[_Key] | None:
    """The identities as X25519 keys, or None unless every one is an age X25519 key.

    Each key's public half is derived here and must match pyrage's own, so a key this module
    would read differently from pyrage is never used.
    """
    keys = []
    for identity in identities:
        if not isinstance(identity, pyrage.x25519.Identity):
            return None
        secret = _bech32_payload(str(identity), "age-secret-key-")
        public = _bech32_payload(str(identity.to_public()), "age")
        if secret is None or public is None or len(secret) != 32:
            return None
        key = X25519PrivateKey.from_private_bytes(secret)
        if key.public_key().public_bytes_raw() != public:
            return None
        keys.append(_Key(key, public))
    return keys or None


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


class _NotHandled(Exception):
    """The header is not one this module decrypts; pyrage gets the file."""


def _b64(text: bytes) -> bytes:
    """age's base64: standard alphabet, no padding, and canonical (unused bits zero), as both
    age and rage require; anything else is not handled here."""
    if len(text) % 4 == 1:
        raise _NotHandled
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise _NotHandled from None
    if base64.b64encode(data).rstrip(b"=") != text:
        raise _NotHandled
    return data


class Replay:
    """What was read already, then the rest of ``inner``: the file from its first byte."""

    def __init__(self, consumed: bytes, inner: _Readable) -> None:
        self._consumed = memoryview(consumed)
        self._inner = inner

    def read(self, size: int = -1) -> bytes:
        if self._consumed:
            out = self._consumed if size < 0 else self._consumed[:size]
            self._consumed = self._consumed[len(out) :]
            return out.tobytes()
        return self._inner.read(size)


class _Header:
    """Reads the header from ``reader`` a block at a time, keeping every byte it read."""

    def __init__(self, reader: _Readable, block: int) -> None:
        self._reader = reader
        self._block = block
        self.data = bytearray()
        self.pos = 0
        self._eof = False

    def _more(self) -> None:
        if self._eof or len(self.data) >= MAX_HEADER:
            raise _NotHandled
        chunk = self._reader.read(self._block)
        if not chunk:
            self._eof = True
            raise _NotHandled
        self.data += chunk

    def line(self) -> bytes:
        while (end := self.data.find(b"\n", self.pos)) < 0:
            self._more()
        line, self.pos = bytes(self.data[self.pos : end]), end + 1
        return line

    def take(self, size: int) -> bytes:
        while len(self.data) - self.pos < size:
            self._more()
        out, self.pos = bytes(self.data[self.pos : self.pos + size]), self.pos + size
        return out


def _unwrap(stanzas: list[tuple[list[bytes], bytes]], keys: list[_Key]) -> bytes:
    """The file key, found as age and rage find it: each key in turn tries every stanza in
    order, the first that opens wins, and a malformed X25519 stanza met on the way ends the
    search (the references refuse the file then; so does pyrage, which gets it)."""
    if any(args[0] == b"scrypt" for args, _ in stanzas):
        raise _NotHandled  # a passphrase file (alone, or malformed): pyrage says what it is
    for key in keys:
        for args, body in stanzas:
            if args[0] != b"X25519":
                continue
            if len(args) != 2:
                raise _NotHandled
            share = _b64(args[1])
            if len(share) != 32 or len(body) != 32:
                raise _NotHandled
            try:
                shared = key.secret.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:
                raise _NotHandled from None  # a low-order share: the shared secret is zero
            wrap = _hkdf(shared, share + key.public, _X25519_INFO)
            try:
                return ChaCha20Poly1305(wrap).decrypt(bytes(12), body, None)
            except InvalidTag:
                continue  # a stanza for another recipient
    raise _NotHandled


def _args(line: bytes) -> list[bytes]:
    """A stanza line's arguments: one space apart, each one or more visible ASCII characters."""
    args = line[3:].split(b" ")
    if not all(_VCHARS.fullmatch(arg) for arg in args):
        raise _NotHandled
    return args


def _parse(header: _Header, keys: list[_Key]) -> tuple[bytes, bytes]:
    """The file key and the payload nonce, once the header's MAC is verified."""
    if header.line() != VERSION_LINE:
        raise _NotHandled
    stanzas: list[tuple[list[bytes], bytes]] = []
    while True:
        start = header.pos
        line = header.line()
        if line.startswith(b"--- "):
            mac = _b64(line[4:])
            authenticated = bytes(header.data[: start + 3])
            break
        if not line.startswith(b"-> "):
            raise _NotHandled
        args = _args(line)
        body = []
        while True:
            body.append(body_line := header.line())
            if len(body_line) > _BODY_COLUMNS:
                raise _NotHandled
            if len(body_line) < _BODY_COLUMNS:
                break
        stanzas.append((args, _b64(b"".join(body))))
    if not stanzas or len(mac) != 32:
        raise _NotHandled
    file_key = _unwrap(stanzas, keys)
    expected = hmac.digest(_hkdf(file_key, b"", b"header"), authenticated, "sha256")
    if not hmac.compare_digest(mac, expected):
        raise _NotHandled
    return file_key, header.take(NONCE)


class Payload:
    """The authenticated file's payload: :meth:`decrypt` writes its plaintext."""

    def __init__(self, file_key: bytes, nonce: bytes, rest: bytes, reader: _Readable) -> None:
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._rest = rest
        self._reader = reader

    def decrypt(self, writer: _Writable, block: int, what: str) -> None:
        """Decrypt every chunk into ``writer``, ``block`` bytes of plaintext per write.

        A chunk is known not to be the last one only once a byte after it has arrived, so one
        sealed chunk is held back until the next read (or the end of the file) says which.
        """
        sealed = bytearray(self._rest)
        counter = 0
        ended = False
        out: list[bytes] = []
        held = 0
        while not ended:
            data = self._reader.read(block)
            if data:
                sealed += data
            else:
                ended = True
            pos = 0
            while len(sealed) - pos > SEALED:
                out.append(self._open(sealed, pos, pos + SEALED, counter, last=False, what=what))
                counter += 1
                pos += SEALED
                held += CHUNK
                if held >= block:
                    writer.write(b"".join(out))
                    out, held = [], 0
            if ended:
                final = len(sealed) - pos
                if final < TAG or (final == TAG and counter):
                    raise self._broken(what, "the last chunk is missing or empty")
                out.append(self._open(sealed, pos, len(sealed), counter, last=True, what=what))
                pos = len(sealed)
            del sealed[:pos]
        if out:
            writer.write(b"".join(out))

    def _open(
        self, sealed: bytearray, start: int, end: int, counter: int, *, last: bool, what: str
    ) -> bytes:
        """The plaintext of chunk ``counter``, ``sealed[start:end]``, once authenticated."""
        nonce = (counter << 8 | last).to_bytes(12, "big")
        with memoryview(sealed) as view, view[start:end] as chunk:
            try:
                return self._aead.decrypt(nonce, chunk, None)
            except InvalidTag:
                raise self._broken(what, f"chunk {counter} does not authenticate") from None

    @staticmethod
    def _broken(what: str, why: str) -> EncryptionError:
        return EncryptionError(
            f"{what} is corrupted or truncated: age authentication failed ({why})"
        )


def open_payload(reader: _Readable, keys: list[_Key], block: int) -> Payload | Replay:
    """Read and authenticate the header; the payload to decrypt, or, when this module does not
    handle the file, a :class:`Replay` of it from its first byte for pyrage."""
    header = _Header(reader, block)
    try:
        file_key, nonce = _parse(header, keys)
    except _NotHandled:
        return Replay(bytes(header.data), reader)
    return Payload(file_key, nonce, bytes(header.data[header.pos :]), reader)
