"""An adversarial review of the OpenSSL age decryptor (:mod:`streamer.stages.age_x25519`).

Three judges read every file here: the ``age`` CLI (the Go reference), pyrage (rage) and
``age.decrypt`` (the module under test, or pyrage after the module hands the file back). A
file the references refuse must be refused, a file they accept must decrypt to the same bytes.

The malformed files come from this file's own age v1 encoder (:func:`seal`, built from
``cryptography`` primitives, sharing no code with the module): the header MAC and every
payload chunk are valid, so only the property under test is broken. The keys are made here
too, from raw X25519 bytes encoded in Bech32, so the encoder never asks the module for them.
"""

from __future__ import annotations

import base64
import hmac
import io
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from streamer.errors import EncryptionError
from streamer.stages import age, age_x25519
from streamer.stages.age_x25519 import MAX_HEADER, Payload, Replay
from tests.conftest import require_tool

CHUNK = 64 * 1024  # the spec's numbers, not the module's constants
SEALED = CHUNK + 16
REFUSED = "refused"
B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
DATA = os.urandom(5 * CHUNK + 123)

# --- keys, in Bech32 as age writes them ----------------------------------------------------

_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            chk ^= gen if (top >> i) & 1 else 0
    return chk


def bech32(hrp: str, data: bytes) -> str:
    acc, bits, values = 0, 0, []
    for byte in data:
        acc, bits = (acc << 8) | byte, bits + 8
        while bits >= 5:
            bits -= 5
            values.append((acc >> bits) & 31)
    if bits:
        values.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    mod = _polymod([*expanded, *values, 0, 0, 0, 0, 0, 0]) ^ 1
    values += [(mod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[v] for v in values)


@dataclass(frozen=True)
class Key:
    public: bytes
    identity: str  #: AGE-SECRET-KEY-1…
    recipient: str  #: age1…
    file: Path

    @property
    def pyrage(self) -> Any:
        return age.parse_identities(self.identity, "test key")[0]


def make_key(directory: Path) -> Key:
    secret = X25519PrivateKey.generate()
    public = secret.public_key().public_bytes_raw()
    identity = bech32("age-secret-key-", secret.private_bytes_raw()).upper()
    path = directory / f"{public.hex()[:8]}.txt"
    path.write_text(identity + "\n")
    return Key(public, identity, bech32("age", public), path)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> list[Key]:
    directory = tmp_path_factory.mktemp("review-keys")
    return [make_key(directory) for _ in range(3)]


@pytest.fixture(scope="module")
def key(keys: list[Key]) -> Key:
    return keys[0]


# --- an age v1 encoder of the test's own ---------------------------------------------------


def b64(data: bytes) -> bytes:
    """Canonical age base64: standard alphabet, unpadded, trailing bits zero."""
    return base64.b64encode(data).rstrip(b"=")


def set_trailing_bits(text: bytes) -> bytes:
    """The same bytes in a non-canonical encoding: the unused low bits of the last char set."""
    spare = {2: 4, 3: 2}[len(text) % 4]  # 2 chars carry 8 of 12 bits, 3 carry 16 of 18
    return text[:-1] + bytes([B64[B64.index(text[-1]) | ((1 << spare) - 1)]])


def lines(text: bytes) -> bytes:
    """A stanza body as age wraps it: 64 columns, ended by a short (maybe empty) line."""
    rows = [text[i : i + 64] for i in range(0, len(text), 64)]
    if not rows or len(rows[-1]) == 64:
        rows.append(b"")
    return b"".join(row + b"\n" for row in rows)


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def wrap(public: bytes, file_key: bytes) -> tuple[bytes, bytes]:
    """(ephemeral share, sealed file key) of an X25519 stanza to ``public``."""
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(public))
    wrapping = hkdf(shared, share + public, b"age-encryption.org/v1/X25519")
    return share, ChaCha20Poly1305(wrapping).encrypt(bytes(12), file_key, None)


def x25519(public: bytes, file_key: bytes) -> bytes:
    share, body = wrap(public, file_key)
    return b"-> X25519 " + b64(share) + b"\n" + lines(b64(body))


def split(data: bytes) -> list[tuple[bytes, bool]]:
    parts = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    return [(part, i == len(parts) - 1) for i, part in enumerate(parts)]


def chunks(file_key: bytes, nonce: bytes, pieces: Sequence[tuple[bytes, bool]]) -> bytes:
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    return b"".join(
        aead.encrypt((counter << 8 | last).to_bytes(12, "big"), plain, None)
        for counter, (plain, last) in enumerate(pieces)
    )


@dataclass
class Sealed:
    data: bytes
    file_key: bytes
    nonce: bytes
    header_len: int  #: through the MAC line's newline


def seal(
    stanzas: Sequence[bytes],
    file_key: bytes,
    pieces: Sequence[tuple[bytes, bool]],
    *,
    version: bytes = b"age-encryption.org/v1\n",
    mac_text: Callable[[bytes], bytes] = b64,
) -> Sealed:
    """An age file: ``stanzas`` (each already encoded), a valid MAC, ``pieces`` as chunks."""
    header = version + b"".join(stanzas) + b"---"
    mac = hmac.digest(hkdf(file_key, b"", b"header"), header, "sha256")
    header += b" " + mac_text(mac) + b"\n"
    nonce = os.urandom(16)
    return Sealed(header + nonce + chunks(file_key, nonce, pieces), file_key, nonce, len(header))


def to(k: Key, data: bytes = DATA[:1000], *, extra: Sequence[bytes] = ()) -> Sealed:
    file_key = os.urandom(16)
    return seal([x25519(k.public, file_key), *extra], file_key, split(data))


# --- the three judges ------------------------------------------------------------------------


class Trickle:
    """A reader that returns at most ``sizes[i]`` bytes on its i-th read (the last size
    repeats): the short reads a network body gives."""

    def __init__(self, data: bytes, sizes: Sequence[int]) -> None:
        self._data = memoryview(data)
        self._sizes = list(sizes)
        self._reads = 0

    def read(self, size: int = -1) -> bytes:
        limit = self._sizes[min(self._reads, len(self._sizes) - 1)]
        self._reads += 1
        size = limit if size < 0 else min(size, limit)
        out, self._data = self._data[:size], self._data[size:]
        return out.tobytes()


def ours(data: bytes, ks: Sequence[Key], sizes: Sequence[int] = (age.BLOCK,)) -> bytes | str:
    out = io.BytesIO()
    try:
        age.decrypt(Trickle(data, sizes), out, [k.pyrage for k in ks], "s3://b/k")
    except EncryptionError:
        return REFUSED
    return out.getvalue()


def by_pyrage(data: bytes, ks: Sequence[Key]) -> bytes | str:
    try:
        return bytes(pyrage.decrypt(data, [k.pyrage for k in ks]))
    except pyrage.DecryptError:
        return REFUSED


def by_age(data: bytes, ks: Sequence[Key]) -> bytes | str:
    argv = [require_tool("age"), "-d"] + [a for k in ks for a in ("-i", str(k.file))]
    done = subprocess.run(argv, input=data, capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else REFUSED


def handled(data: bytes, ks: Sequence[Key], block: int = age.BLOCK) -> bool:
    """Whether the module decrypts ``data`` itself (else it hands it back to pyrage)."""
    found = age_x25519.x25519_keys([k.pyrage for k in ks])
    assert found is not None
    return isinstance(age_x25519.open_payload(io.BytesIO(data), found, block), Payload)


def judged(data: bytes, ks: Sequence[Key]) -> tuple[bytes | str, bytes | str, bytes | str]:
    return by_age(data, ks), by_pyrage(data, ks), ours(data, ks)


# --- headers the references refuse (canonical encodings, grammar, X25519 rules) -----------

Case = Callable[[list[Key]], tuple[bytes, list[Key]]]


def _mac(text: Callable[[bytes], bytes]) -> Case:
    def make(ks: list[Key]) -> tuple[bytes, list[Key]]:
        file_key = os.urandom(16)
        return seal(
            [x25519(ks[0].public, file_key)], file_key, split(b"x"), mac_text=text
        ).data, ks[:1]

    return make


def _stanza(
    share: Callable[[bytes], bytes] = b64, body: Callable[[bytes], bytes] = lambda t: lines(b64(t))
) -> Case:
    """One X25519 stanza to ks[0] with its share and body text encoded by the given functions."""

    def make(ks: list[Key]) -> tuple[bytes, list[Key]]:
        file_key = os.urandom(16)
        raw_share, sealed = wrap(ks[0].public, file_key)
        stanza = b"-> X25519 " + share(raw_share) + b"\n" + body(sealed)
        return seal([stanza], file_key, split(b"x")).data, ks[:1]

    return make


def _before(stanza: bytes) -> Case:
    """``stanza`` first, then a valid X25519 stanza to ks[0]."""

    def make(ks: list[Key]) -> tuple[bytes, list[Key]]:
        file_key = os.urandom(16)
        return seal([stanza, x25519(ks[0].public, file_key)], file_key, split(b"x")).data, ks[:1]

    return make


def _grease(stanza: bytes) -> Case:
    """A valid X25519 stanza to ks[0], then ``stanza`` (of a type nobody knows)."""
    return lambda ks: (to(ks[0], b"x", extra=[stanza]).data, ks[:1])


def _identity_order(ks: list[Key]) -> tuple[bytes, list[Key]]:
    """Stanzas [to B, malformed X25519, to A], identities [A, B]: age tries identity A on every
    stanza first, and meets the malformed one before any stanza opens."""
    file_key = os.urandom(16)
    stanzas = [x25519(ks[1].public, file_key), b"-> X25519\n" + lines(b64(os.urandom(32)))]
    return seal([*stanzas, x25519(ks[0].public, file_key)], file_key, split(b"x")).data, ks[:2]


TEN = b64(os.urandom(10))  # a 14-character body line, 4 spare bits
P25519 = 2**255 - 19
LOW_ORDER = [  # shares whose shared secret is all zero, whatever the key
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    P25519.to_bytes(32, "little"),  # 0 and 1 written unreduced
    (P25519 + 1).to_bytes(32, "little"),
]


def _low_order(which: int) -> bytes:
    return b"-> X25519 " + b64(LOW_ORDER[which]) + b"\n" + lines(b64(os.urandom(32)))


def _low_order_first(which: int) -> Case:
    return lambda ks: _before(_low_order(which))(ks)


REFERENCES_REFUSE: dict[str, Case] = {
    # The MAC line is outside the MAC: anyone can make these from a good file.
    "mac-trailing-bits": _mac(lambda m: set_trailing_bits(b64(m))),
    "mac-padded": _mac(lambda m: b64(m) + b"="),
    # Inside the MAC: only whoever encrypted the file can make these.
    "share-trailing-bits": _stanza(share=lambda s: set_trailing_bits(b64(s))),
    "share-padded": _stanza(share=lambda s: b64(s) + b"="),
    "body-trailing-bits": _stanza(body=lambda b: set_trailing_bits(b64(b)) + b"\n"),
    "body-padded": _stanza(body=lambda b: b64(b) + b"=\n"),
    "grease-body-trailing-bits": _grease(b"-> g\n" + set_trailing_bits(TEN) + b"\n"),
    "grease-body-padded": _grease(b"-> g\n" + TEN + b"==\n"),
    "grease-line-over-64-columns": _grease(b"-> g\n" + b64(os.urandom(51)) + b"\n\n"),
    "grease-line-not-a-quantum": _grease(b"-> g\n" + b"A" * 65 + b"\nAAA\n"),
    "grease-arg-tab": _grease(b"-> g a\tb\n\n"),
    "grease-arg-cr": _grease(b"-> g a\r\n\n"),
    "grease-arg-del": _grease(b"-> g a\x7f\n\n"),
    "grease-arg-8bit": _grease(b"-> g \xc3\xa9\n\n"),
    "grease-type-control": _grease(b"-> g\x01\n\n"),
    "x25519-no-arg-first": _before(b"-> X25519\n" + lines(b64(os.urandom(32)))),
    "x25519-two-args-first": _before(
        b"-> X25519 " + b64(os.urandom(32)) + b" x\n" + lines(b64(os.urandom(32)))
    ),
    **{f"x25519-low-order-{i}-first": _low_order_first(i) for i in range(len(LOW_ORDER))},
    "identity-order": _identity_order,
}


@pytest.mark.parametrize("make", REFERENCES_REFUSE.values(), ids=REFERENCES_REFUSE.keys())
def test_headers_the_references_refuse_are_refused(keys: list[Key], make: Case) -> None:
    data, ks = make(keys)
    assert by_age(data, ks) == REFUSED
    assert by_pyrage(data, ks) == REFUSED
    assert ours(data, ks) == REFUSED


def test_a_mac_line_is_not_malleable(key: Key) -> None:
    """Re-encoding the MAC (outside the MAC) must not give a second file that decrypts."""
    good = to(key, b"payload")
    header = good.data[: good.header_len]
    mac_at = header.rindex(b"--- ") + 4
    text = header[mac_at:-1]
    for forged_text in (set_trailing_bits(text), text + b"="):
        forged = header[:mac_at] + forged_text + b"\n" + good.data[good.header_len :]
        assert forged != good.data
        assert by_age(forged, [key]) == REFUSED
        assert ours(forged, [key]) == REFUSED


# --- headers the references accept: the module decrypts them itself, to the same bytes ----


def _stanzas(pick: Callable[[list[Key], bytes], list[bytes]], n_ids: int = 1) -> Case:
    def make(ks: list[Key]) -> tuple[bytes, list[Key]]:
        file_key = os.urandom(16)
        return seal(pick(ks, file_key), file_key, split(DATA[:777])).data, ks[:n_ids]

    return make


def _high_bit_share(ks: list[Key]) -> tuple[bytes, list[Key]]:
    """The ephemeral share written with bit 255 set: X25519 ignores the bit, the salt keeps it."""
    file_key = os.urandom(16)
    ephemeral = X25519PrivateKey.generate()
    share = bytearray(ephemeral.public_key().public_bytes_raw())
    share[31] |= 0x80
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(ks[0].public))
    wrapping = hkdf(shared, bytes(share) + ks[0].public, b"age-encryption.org/v1/X25519")
    body = ChaCha20Poly1305(wrapping).encrypt(bytes(12), file_key, None)
    stanza = b"-> X25519 " + b64(bytes(share)) + b"\n" + lines(b64(body))
    return seal([stanza], file_key, split(b"x")).data, ks[:1]


def make_key_public() -> bytes:
    return X25519PrivateKey.generate().public_key().public_bytes_raw()


SSH_LIKE = b"-> ssh-ed25519 " + b64(os.urandom(4)) + b" " + b64(os.urandom(32)) + b"\n"
REFERENCES_ACCEPT: dict[str, Case] = {
    "one-stanza": _stanzas(lambda ks, fk: [x25519(ks[0].public, fk)]),
    "grease-vchar-args": _grease(b"-> g-x a~b ! ~\n" + lines(b64(os.urandom(100)))),
    "grease-body-48-bytes": _grease(b"-> g\n" + lines(b64(os.urandom(48)))),
    "grease-body-96-bytes": _grease(b"-> g\n" + lines(b64(os.urandom(96)))),
    "grease-body-empty": _grease(b"-> g\n\n"),
    "ssh-stanza-first": _before(SSH_LIKE + lines(b64(os.urandom(32)))),
    "x25519-no-arg-after": _grease(b"-> X25519\n" + lines(b64(os.urandom(32)))),
    "x25519-low-order-after": lambda ks: _grease(_low_order(2))(ks),
    "x25519-other-recipient-first": _stanzas(
        lambda ks, fk: [x25519(ks[1].public, fk), x25519(ks[0].public, fk)]
    ),
    "x25519-ours-last-of-five": _stanzas(
        lambda ks, fk: [
            *(x25519(make_key_public(), fk) for _ in range(4)),
            x25519(ks[0].public, fk),
        ]
    ),
    "two-identities": _stanzas(lambda ks, fk: [x25519(ks[2].public, fk)], n_ids=3),
    "share-high-bit-set": _high_bit_share,
}


@pytest.mark.parametrize("make", REFERENCES_ACCEPT.values(), ids=REFERENCES_ACCEPT.keys())
def test_headers_the_references_accept_are_decrypted_here(keys: list[Key], make: Case) -> None:
    data, ks = make(keys)
    expected = by_age(data, ks)
    assert expected != REFUSED
    assert by_pyrage(data, ks) == expected
    assert handled(data, ks)
    assert ours(data, ks) == expected


# --- headers every judge refuses (the module hands them to pyrage, or refuses itself) -----


def _scrypt() -> bytes:
    return b"-> scrypt " + b64(os.urandom(16)) + b" 10\n" + lines(b64(os.urandom(32)))


def _x25519_sized(share_len: int, key_len: int) -> Case:
    def make(ks: list[Key]) -> tuple[bytes, list[Key]]:
        file_key = os.urandom(key_len)
        share, sealed = wrap(ks[0].public, file_key)
        share = (share * 2)[:share_len]
        stanza = b"-> X25519 " + b64(share) + b"\n" + lines(b64(sealed))
        return seal([stanza], file_key, split(b"x")).data, ks[:1]

    return make


def _edited(edit: Callable[[bytes, int], bytes]) -> Case:
    """A good file to ks[0] passed through ``edit(data, header_len)``."""

    def make(ks: list[Key]) -> tuple[bytes, list[Key]]:
        sealed = to(ks[0], DATA[:3000])
        return edit(sealed.data, sealed.header_len), ks[:1]

    return make


def _two_file_keys(ks: list[Key]) -> tuple[bytes, list[Key]]:
    """Two stanzas to ks[0]: the first wraps a key the MAC was not made with."""
    file_key = os.urandom(16)
    stanzas = [x25519(ks[0].public, os.urandom(16)), x25519(ks[0].public, file_key)]
    return seal(stanzas, file_key, split(b"x")).data, ks[:1]


def _next_b64(char: int) -> int:
    """Another base64 character: a MAC that decodes, to other bytes."""
    return B64[(B64.index(char) + 1) % 64]


EVERYONE_REFUSES: dict[str, Case] = {
    "version-v2": _edited(lambda d, _: d.replace(b"/v1\n", b"/v2\n", 1)),
    "version-trailing-space": _edited(lambda d, _: d.replace(b"/v1\n", b"/v1 \n", 1)),
    "version-crlf": _edited(lambda d, _: d.replace(b"/v1\n", b"/v1\r\n", 1)),
    "version-upper": _edited(lambda d, _: d.replace(b"age-", b"AGE-", 1)),
    "no-stanza": lambda ks: (seal([], b"k" * 16, split(b"x")).data, ks[:1]),
    "mac-missing": _edited(lambda d, h: d[: d.rindex(b"---", 0, h)] + b"---\n" + d[h:]),
    "mac-short": _edited(lambda d, h: d[: h - 2] + b"\n" + d[h:]),
    "mac-long": _edited(lambda d, h: d[: h - 1] + b"A\n" + d[h:]),
    "mac-trailing-space": _edited(lambda d, h: d[: h - 1] + b" \n" + d[h:]),
    "mac-two-spaces": _edited(lambda d, h: d.replace(b"--- ", b"---  ", 1)),
    "mac-wrong": _edited(lambda d, h: d[: h - 3] + bytes([_next_b64(d[h - 3])]) + d[h - 2 :]),
    "stanza-byte-flipped": _edited(lambda d, h: d[:30] + bytes([d[30] ^ 1]) + d[31:]),
    "header-line-crlf": _edited(lambda d, h: d.replace(b"\n", b"\r\n", 2).replace(b"\r", b"", 1)),
    "scrypt-alone": lambda ks: (seal([_scrypt()], b"k" * 16, split(b"x")).data, ks[:1]),
    "share-31-bytes": _x25519_sized(31, 16),
    "share-33-bytes": _x25519_sized(33, 16),
    "file-key-32-bytes": _x25519_sized(32, 32),
    "file-key-15-bytes": _x25519_sized(32, 15),
    "low-order-alone": lambda ks: (
        seal([_low_order(0)], b"k" * 16, split(b"x")).data,
        ks[:1],
    ),
    "first-unwrapped-key-fails-mac": _two_file_keys,
    "x25519-extra-empty-line": _grease(b"\n"),
    "stanza-no-type": _grease(b"-> \n\n"),
    "stanza-no-space": _grease(b"->g\n\n"),
    "stanza-empty-arg": _grease(b"-> g  a\n\n"),
    "other-recipient-only": lambda ks: (to(ks[1]).data, ks[:1]),
}


@pytest.mark.parametrize("make", EVERYONE_REFUSES.values(), ids=EVERYONE_REFUSES.keys())
def test_headers_everyone_refuses(keys: list[Key], make: Case) -> None:
    data, ks = make(keys)
    assert judged(data, ks) == (REFUSED, REFUSED, REFUSED)


def test_a_header_cut_anywhere_is_refused(key: Key) -> None:
    sealed = to(key, b"")
    for cut in range(sealed.header_len + 16 + 16):
        assert ours(sealed.data[:cut], [key]) == REFUSED, cut
    assert ours(sealed.data, [key]) == b""


def test_nothing_is_written_before_the_header_mac_is_verified(key: Key) -> None:
    file_key = os.urandom(16)
    good = seal([x25519(key.public, file_key)], file_key, split(DATA))
    data = good.data[: good.header_len - 3] + bytes([_next_b64(good.data[good.header_len - 3])])
    data += good.data[good.header_len - 2 :]
    assert not handled(data, [key])
    out = io.BytesIO()
    with pytest.raises(EncryptionError):
        age.decrypt(io.BytesIO(data), out, [key.pyrage], "s3://b/k")
    assert out.getvalue() == b""
    assert ours(good.data, [key]) == DATA


# Where the Go CLI and pyrage disagree, the module must keep pyrage's answer (pyrage was the
# decryptor before it): the spec's "an scrypt stanza must be alone" (age 1.1.1 checks it only
# for passphrase identities), and rage's leniency for a body ended by a full line (old betas).
PYRAGES_CALL: dict[str, tuple[Case, bool]] = {
    "scrypt-first": (_before(_scrypt()), False),
    "scrypt-after": (_grease(_scrypt()), False),
    "body-not-ended-by-short-line": (_grease(b"-> g\n" + b64(os.urandom(48)) + b"\n"), True),
}


@pytest.mark.parametrize(("make", "accepted"), PYRAGES_CALL.values(), ids=PYRAGES_CALL.keys())
def test_where_the_references_differ_pyrage_decides(
    keys: list[Key], make: Case, accepted: bool
) -> None:
    data, ks = make(keys)
    assert not handled(data, ks)
    assert (by_pyrage(data, ks) != REFUSED) is accepted
    assert ours(data, ks) == by_pyrage(data, ks)


# --- the payload: STREAM chunks ------------------------------------------------------------

FULL, HALF = DATA[:CHUNK], DATA[: CHUNK // 2]


def _payload(
    pieces: Sequence[tuple[bytes, bool]], edit: Callable[[Sealed], bytes] | None = None
) -> Case:
    def make(ks: list[Key]) -> tuple[bytes, list[Key]]:
        file_key = os.urandom(16)
        sealed = seal([x25519(ks[0].public, file_key)], file_key, pieces)
        return (edit(sealed) if edit else sealed.data), ks[:1]

    return make


def _sealed_chunk(s: Sealed, counter: int, plain: bytes, last: bool) -> bytes:
    aead = ChaCha20Poly1305(hkdf(s.file_key, s.nonce, b"payload"))
    return aead.encrypt((counter << 8 | last).to_bytes(12, "big"), plain, None)


def _swap_first_two(s: Sealed) -> bytes:
    at = s.header_len + 16
    return (
        s.data[:at]
        + s.data[at + SEALED : at + 2 * SEALED]
        + s.data[at : at + SEALED]
        + s.data[at + 2 * SEALED :]
    )


def _skip_counter(s: Sealed) -> bytes:
    """Chunks 0 and 2 (chunk 1 left out, its counter skipped), each otherwise valid."""
    body = _sealed_chunk(s, 0, FULL, False) + _sealed_chunk(s, 2, HALF, True)
    return s.data[: s.header_len + 16] + body


THREE = [(FULL, False), (FULL, False), (HALF, True)]
PAYLOADS: dict[str, tuple[Case, bytes | None]] = {
    "empty-only-chunk": (_payload([(b"", True)]), b""),
    "one-byte": (_payload([(b"x", True)]), b"x"),
    "short-last": (_payload(THREE), FULL + FULL + HALF),
    "full-last": (_payload([(FULL, False), (FULL, True)]), FULL + FULL),
    "full-only-chunk": (_payload([(FULL, True)]), FULL),
    "no-payload": (_payload([], lambda s: s.data), None),
    "nonce-cut": (_payload([(b"x", True)], lambda s: s.data[: s.header_len + 10]), None),
    "tag-cut": (_payload([(b"", True)], lambda s: s.data[:-1]), None),
    "no-last-flag": (_payload([(FULL, False), (FULL, False)]), None),
    "last-flag-then-more": (_payload([(FULL, True), (HALF, True)]), None),
    "short-chunk-not-last": (_payload([(HALF, False), (HALF, True)]), None),
    "empty-last-after-data": (_payload([(FULL, False), (b"", True)]), None),
    "oversized-last-chunk": (_payload([(FULL + b"x", True)]), None),
    "chunks-swapped": (_payload(THREE, _swap_first_two), None),
    "counter-skipped": (_payload(THREE, _skip_counter), None),
    "cut-at-chunk-boundary": (_payload(THREE, lambda s: s.data[: -(len(HALF) + 16)]), None),
    "cut-inside-last-tag": (_payload(THREE, lambda s: s.data[:-3]), None),
    "trailing-byte": (_payload(THREE, lambda s: s.data + b"\0"), None),
    "trailing-16-bytes": (_payload(THREE, lambda s: s.data + bytes(16)), None),
    "trailing-after-full-last": (
        _payload([(FULL, True)], lambda s: s.data + _sealed_chunk(s, 1, b"x", True)),
        None,
    ),
    "trailing-valid-last-chunk": (
        _payload(THREE, lambda s: s.data + _sealed_chunk(s, 3, b"x", True)),
        None,
    ),
    "nonce-flipped": (
        _payload(
            THREE,
            lambda s: (
                s.data[: s.header_len]
                + bytes([s.data[s.header_len] ^ 1])
                + s.data[s.header_len + 1 :]
            ),
        ),
        None,
    ),
    "middle-chunk-flipped": (
        _payload(
            THREE, lambda s: s.data[:-(CHUNK)] + bytes([s.data[-CHUNK] ^ 1]) + s.data[-CHUNK + 1 :]
        ),
        None,
    ),
}


@pytest.mark.parametrize(("make", "expected"), PAYLOADS.values(), ids=PAYLOADS.keys())
def test_payloads(keys: list[Key], make: Case, expected: bytes | None) -> None:
    data, ks = make(keys)
    want = REFUSED if expected is None else expected
    assert judged(data, ks) == (want, want, want)
    for sizes in ((1, 4093), (SEALED - 1,), (SEALED + 1,), (34, age.BLOCK)):
        assert ours(data, ks, sizes) == want


class Recording:
    """A writer that keeps what it was given, to show what left before a failure."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes | memoryview) -> int:
        self.data += data
        return len(data)


@pytest.mark.parametrize("sizes", [(age.BLOCK,), (1000,), (SEALED,)], ids=str)
def test_no_plaintext_of_a_damaged_chunk_is_written(key: Key, sizes: tuple[int]) -> None:
    plain = DATA[: 5 * CHUNK]
    sealed = to(key, plain)
    damaged = bytearray(sealed.data)
    damaged[sealed.header_len + 16 + 2 * SEALED + 100] ^= 1  # inside chunk 2
    out = Recording()
    with pytest.raises(EncryptionError, match="chunk 2 does not authenticate"):
        age.decrypt(Trickle(bytes(damaged), sizes), out, [key.pyrage], "s3://b/k")
    assert plain.startswith(out.data)
    assert len(out.data) <= 2 * CHUNK


# --- files the age CLI writes, and files ours (pyrage) writes ------------------------------


def age_encrypt(data: bytes, recipients: Sequence[str], *flags: str) -> bytes:
    argv = [require_tool("age"), *flags] + [a for r in recipients for a in ("-r", r)]
    return subprocess.run(argv, input=data, capture_output=True, check=True).stdout


SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, len(DATA)]


@pytest.mark.parametrize("size", SIZES, ids=lambda n: f"{n}B")
@pytest.mark.parametrize("n_recipients", [1, 3])
def test_age_cli_files(keys: list[Key], size: int, n_recipients: int) -> None:
    chosen = keys[:n_recipients]
    data = age_encrypt(DATA[:size], [k.recipient for k in chosen])
    for ks in ([chosen[-1]], chosen, chosen[::-1]):
        assert handled(data, ks)
        assert ours(data, ks) == by_pyrage(data, ks) == DATA[:size]
        assert ours(data, ks, (1, 7, 4093)) == DATA[:size]


def test_age_cli_files_cut_or_extended_are_refused(key: Key) -> None:
    data = age_encrypt(DATA[: 3 * CHUNK], [key.recipient])
    start = len(data) - 3 * SEALED  # the age CLI fills every chunk, the last one too
    for cut in (start, start + SEALED, start + 2 * SEALED, len(data) - 1):
        assert ours(data[:cut], [key]) == by_pyrage(data[:cut], [key]) == REFUSED, cut
    for extra in (b"\0", bytes(16), data[-SEALED:]):
        assert ours(data + extra, [key]) == by_pyrage(data + extra, [key]) == REFUSED


def test_age_keygen_identities(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    subprocess.run([require_tool("age-keygen"), "-o", str(path)], capture_output=True, check=True)
    identities = age.load_identities([path], None)
    recipient = str(identities[0].to_public())
    data = age_encrypt(HALF, [recipient])
    found = age_x25519.x25519_keys(identities)
    assert found is not None
    assert isinstance(age_x25519.open_payload(io.BytesIO(data), found, age.BLOCK), Payload)
    out = io.BytesIO()
    age.decrypt(io.BytesIO(data), out, identities, "s3://b/k")
    assert out.getvalue() == HALF


def test_age_cli_ssh_and_x25519_recipients(tmp_path: Path, key: Key) -> None:
    subprocess.run(
        [require_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")],
        check=True,
    )
    data = age_encrypt(FULL, [(tmp_path / "id.pub").read_text().strip(), key.recipient])
    assert handled(data, [key])  # the ssh-ed25519 stanza is skipped
    assert ours(data, [key]) == FULL


@pytest.mark.parametrize("size", [0, CHUNK, len(DATA)], ids=lambda n: f"{n}B")
def test_our_encryptor_and_the_age_cli_agree(keys: list[Key], size: int) -> None:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(DATA[:size]), out, [age.parse_recipient(k.recipient) for k in keys])
    assert by_age(out.getvalue(), keys[1:2]) == DATA[:size]
    assert handled(out.getvalue(), keys[2:])
    assert ours(out.getvalue(), keys[2:]) == DATA[:size]


# --- the hand-back to pyrage: the bytes replayed are exactly the bytes read ----------------


def drain(reader: Replay, sizes: Sequence[int]) -> bytes:
    out = bytearray()
    for i in range(1 << 30):
        piece = reader.read(sizes[i % len(sizes)])
        if not piece:
            return bytes(out)
        out += piece
    raise AssertionError("unreachable")


HANDED_BACK: dict[str, Callable[[list[Key]], bytes]] = {
    "bad-mac": lambda ks: EVERYONE_REFUSES["mac-wrong"](ks)[0],
    "version-v2": lambda ks: EVERYONE_REFUSES["version-v2"](ks)[0],
    "scrypt-after": lambda ks: PYRAGES_CALL["scrypt-after"][0](ks)[0],
    "no-matching-key": lambda ks: to(ks[1], DATA[: CHUNK + 5]).data,
    "body-not-ended-by-short-line": lambda ks: PYRAGES_CALL["body-not-ended-by-short-line"][0](ks)[
        0
    ],
    "armored": lambda ks: age_encrypt(DATA[: 2 * CHUNK + 9], [ks[0].recipient], "-a"),
    "header-cut": lambda ks: to(ks[0]).data[:100],
}
READS = [(1,), (3,), (7, 1, 4093), (34, age.BLOCK), (CHUNK + 1,), (age.BLOCK,)]


@pytest.mark.parametrize("make", HANDED_BACK.values(), ids=HANDED_BACK.keys())
@pytest.mark.parametrize("block", [1, 5, 64, 4096, age.BLOCK])
def test_a_handed_back_file_replays_from_its_first_byte(
    keys: list[Key], make: Callable[[list[Key]], bytes], block: int
) -> None:
    data = make(keys)
    found = age_x25519.x25519_keys([keys[0].pyrage])
    assert found is not None
    for sizes in READS:
        replay = age_x25519.open_payload(Trickle(data, sizes), found, block)
        assert isinstance(replay, Replay)
        assert drain(replay, (5, 1, 8192, age.BLOCK)) == data


@pytest.mark.parametrize("make", HANDED_BACK.values(), ids=HANDED_BACK.keys())
def test_a_handed_back_file_is_pyrages_to_decide(
    keys: list[Key], make: Callable[[list[Key]], bytes]
) -> None:
    data = make(keys)
    expected = by_pyrage(data, keys[:1])
    for sizes in READS:
        assert ours(data, keys[:1], sizes) == expected


def _near_limit(k: Key, header_len: int) -> Sealed:
    """A good file to ``k`` whose header (through the MAC line) is ``header_len`` bytes."""
    file_key = os.urandom(16)
    stanza = x25519(k.public, file_key)
    rows = (header_len - 200) // 65
    probe = seal([stanza, b"-> g a\n" + lines(b"A" * 64 * rows)], file_key, []).header_len
    arg = b"a" * (1 + header_len - probe)
    grease = b"-> g " + arg + b"\n" + lines(b"A" * 64 * rows)
    sealed = seal([stanza, grease], file_key, split(DATA[:1000]))
    assert sealed.header_len == header_len
    return sealed


@pytest.mark.parametrize(
    "header_len",
    [MAX_HEADER - 200, MAX_HEADER - 16, MAX_HEADER - 8, MAX_HEADER - 1, MAX_HEADER + 10],
    ids=lambda n: f"limit{n - MAX_HEADER:+d}",
)
def test_headers_at_the_size_limit(key: Key, header_len: int) -> None:
    """Decrypted here, or replayed whole (pyrage reads a MiB of header in quadratic time, some
    twenty minutes here, so the age CLI judges the plaintext)."""
    data = _near_limit(key, header_len).data
    found = age_x25519.x25519_keys([key.pyrage])
    assert found is not None
    assert by_age(data, [key]) == DATA[:1000]
    for sizes in ((age.BLOCK,), (34, age.BLOCK), (4096,), (CHUNK + 1,)):
        opened = age_x25519.open_payload(Trickle(data, sizes), found, age.BLOCK)
        if sizes == (age.BLOCK,):  # one read: handled exactly when header and nonce fit in it
            assert isinstance(opened, Payload) is (header_len + 16 <= MAX_HEADER)
        if isinstance(opened, Replay):
            assert drain(opened, (8192,)) == data
        else:
            out = io.BytesIO()
            opened.decrypt(out, age.BLOCK, "s3://b/k")
            assert out.getvalue() == DATA[:1000]
