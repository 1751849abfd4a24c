"""What an age recipient must look like, checked from its text alone, without the age library.

``backup-gen validate`` checks a run's recipients before anything runs, and the generator must
not load the data plane's native libraries (pyrage) to do it; :mod:`streamer.stages.age` shares
the first step, which kind of key a text is, so both give the same messages. The checks:

- ``age1…``: bech32 (BIP 173) with a valid checksum, holding the 32 bytes of an X25519 key;
- ``ssh-ed25519 …``: base64 of an SSH key blob of that type, holding a point of the Ed25519
  curve (the age library converts it to X25519 and refuses one that is not);
- ``ssh-rsa …``: base64 of an SSH key blob of that type, with the modulus sizes and public
  exponents the age library takes.

A text this module accepts, the age library accepts too (the tests hold both to that).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final, Literal

from streamer.errors import ConfigError

__all__ = [
    "RSA_MAX_BITS",
    "RSA_MIN_BITS",
    "RecipientKind",
    "check_recipient",
    "preview",
    "recipient_kind",
]

RecipientKind = Literal["x25519", "ssh-ed25519", "ssh-rsa"]

X25519_PREFIX: Final = "age1"
SECRET_KEY_PREFIX: Final = "AGE-SECRET-KEY-"  # noqa: S105 -- the prefix that marks one, not a key
_SSH_KINDS: Final[tuple[RecipientKind, ...]] = ("ssh-ed25519", "ssh-rsa")

#: The RSA keys the age library encrypts to.
RSA_MIN_BITS: Final = 2048
RSA_MAX_BITS: Final = 4096
_RSA_MIN_EXPONENT: Final = 3
_RSA_MAX_EXPONENT: Final = (1 << 33) - 1

_BECH32_CHARSET: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATORS: Final = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_BECH32_CHECKSUM_LENGTH: Final = 6
_X25519_KEY_BYTES: Final = 32

#: Curve25519's field prime and the Edwards curve constant d = -121665/121666.
_P: Final = 2**255 - 19
_D: Final = -121665 * pow(121666, -1, _P) % _P

_BASE64: Final = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def preview(text: str) -> str:
    """The start of a recipient, quoted, for messages (a recipient is public, but may be long)."""
    return repr(text[:16] + "…") if len(text) > 16 else repr(text)


def recipient_kind(text: str) -> RecipientKind:
    """Which kind of key ``text`` is, by its shape; ConfigError says what shape was expected."""
    text = text.strip()
    if text.startswith(SECRET_KEY_PREFIX):
        # Never echo it: this is a secret pasted where a public key belongs.
        raise ConfigError(
            "recipient: that is an age identity (a secret key), not a recipient; "
            "pass its public key (age1…, printed by 'age-keygen -y')"
        )
    if text.startswith(X25519_PREFIX):
        return "x25519"
    for kind in _SSH_KINDS:
        if text.startswith(f"{kind} "):
            return kind
    raise ConfigError(
        f"recipient {preview(text)} is not an age recipient: "
        "expected an age1… key, or an 'ssh-ed25519 …' or 'ssh-rsa …' public key"
    )


def check_recipient(text: str) -> RecipientKind:
    """Check one recipient as far as its text tells; ConfigError says what is wrong with it."""
    text = text.strip()
    kind = recipient_kind(text)
    reason = _x25519_problem(text) if kind == "x25519" else _ssh_problem(kind, text)
    if reason is not None:
        raise ConfigError(f"recipient {preview(text)} is not a valid key: {reason}")
    return kind


# --- age1…: bech32 ---------------------------------------------------------------------------


def _bech32_polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_BECH32_GENERATORS):
            if (top >> i) & 1:
                checksum ^= generator
    return checksum


def _bech32_payload(hrp: str, data: str) -> bytes | str:
    """The bytes of bech32 ``data`` under human-readable part ``hrp``, or why it is not."""
    values = []
    for char in data:
        value = _BECH32_CHARSET.find(char)
        if value < 0:
            return (
                f"{char!r} is not a bech32 character (age1… keys are lower case letters "
                "and digits, without 1, b, i and o)"
            )
        values.append(value)
    if len(values) < _BECH32_CHECKSUM_LENGTH:
        return "too short for a bech32 key"
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    if _bech32_polymod(expanded + values) != 1:
        return "its bech32 checksum does not match: a character is mistyped, missing or extra"
    out = bytearray()
    accumulator = bits = 0
    for value in values[:-_BECH32_CHECKSUM_LENGTH]:
        accumulator = (accumulator << 5 | value) & 0xFFF
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append(accumulator >> bits & 0xFF)
    if bits >= 5 or accumulator & ((1 << bits) - 1):
        return "its bech32 data does not end on a whole byte"
    return bytes(out)


def _x25519_problem(text: str) -> str | None:
    payload = _bech32_payload(X25519_PREFIX[:-1], text[len(X25519_PREFIX) :])
    if isinstance(payload, str):
        return payload
    if len(payload) != _X25519_KEY_BYTES:
        return f"it holds {len(payload)} bytes; an age1… key holds {_X25519_KEY_BYTES}"
    return None


# --- ssh-ed25519 / ssh-rsa: SSH key blobs ------------------------------------------------------


class _Blob:
    """Reads the length-prefixed fields of an SSH public key blob (RFC 4253 section 6.6)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def string(self) -> bytes | None:
        """The next field, or None if the blob ends before it does."""
        start = self._at + 4
        if start > len(self._data):
            return None
        end = start + int.from_bytes(self._data[self._at : start], "big")
        if end > len(self._data):
            return None
        self._at = end
        return self._data[start:end]

    def mpint(self) -> int | None:
        """The next field as a non-negative multiple-precision integer in its one encoding."""
        raw = self.string()
        if raw is None:
            return None
        negative = bool(raw) and raw[0] >= 0x80
        padded = raw[:1] == b"\0" and (len(raw) == 1 or raw[1] < 0x80)
        return None if negative or padded else int.from_bytes(raw, "big")

    @property
    def left(self) -> int:
        return len(self._data) - self._at


def _decode_base64(text: str) -> bytes | None:
    if not _BASE64.fullmatch(text):
        return None
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None


def _on_ed25519_curve(key: bytes) -> bool:
    """Whether a compressed Edwards point decompresses (RFC 8032 section 5.1.3, as age does)."""
    y = int.from_bytes(key, "little") & ((1 << 255) - 1)
    y2 = y * y % _P
    x2 = (y2 - 1) * pow(_D * y2 + 1, -1, _P) % _P
    return x2 == 0 or pow(x2, (_P - 1) // 2, _P) == 1


def _rsa_problem(blob: _Blob) -> str | None:
    exponent, modulus = blob.mpint(), blob.mpint()
    if exponent is None or modulus is None:
        return "its RSA numbers are cut short or not in SSH's encoding"
    if modulus.bit_length() < RSA_MIN_BITS:
        return f"a {modulus.bit_length()}-bit RSA key is too small for age (use {RSA_MIN_BITS}+)"
    if modulus.bit_length() > RSA_MAX_BITS:
        return f"a {modulus.bit_length()}-bit RSA key is too large for age (at most {RSA_MAX_BITS})"
    if exponent % 2 == 0 or not _RSA_MIN_EXPONENT <= exponent <= _RSA_MAX_EXPONENT:
        return f"RSA public exponent {exponent} is not one age takes (odd, 3 to 2^33-1)"
    return None


def _ssh_problem(kind: RecipientKind, text: str) -> str | None:
    encoded = re.split(r"\s", text[len(kind) + 1 :], maxsplit=1)[0]
    if not encoded:
        return f"no base64 key after {kind!r}: separate the two by one space"
    data = _decode_base64(encoded)
    if data is None:
        return "the key is not valid base64: copy the whole line of the .pub file"
    blob = _Blob(data)
    embedded = blob.string()
    if embedded is None:
        return "the key data is cut short: copy the whole line of the .pub file"
    if embedded != kind.encode():
        if re.fullmatch(rb"[!-~]{1,64}", embedded):
            return f"the key data is an {embedded.decode()!r} key, not {kind!r}"
        return f"the key data does not start with its type {kind!r}"
    if kind == "ssh-ed25519":
        point = blob.string()
        if point is None or len(point) != _X25519_KEY_BYTES:
            return "the key data does not hold a 32-byte Ed25519 key"
        if not _on_ed25519_curve(point):
            return "the key is not an Ed25519 public key (not a point of the curve): it is mistyped"
    else:
        reason = _rsa_problem(blob)
        if reason is not None:
            return reason
    if blob.left:
        return f"{blob.left} unexpected bytes follow the key"
    return None
