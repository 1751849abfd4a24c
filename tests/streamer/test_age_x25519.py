"""The OpenSSL decryption of age files for X25519 keys, against pyrage and the ``age`` CLI.

Each crafted file is written by :func:`seal`, an age encoder of its own (the format, not the
module under test), and read both by ``age.decrypt`` and by pyrage alone: the two must accept
the same files with the same plaintext and refuse the same files. Where the module leaves a
file to pyrage, the tests check that it did, and that pyrage saw the file from its first byte.
"""

from __future__ import annotations

import base64
import hmac
import io
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyrage
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from streamer.errors import EncryptionError
from streamer.sample import chunks
from streamer.stages import age, age_x25519
from streamer.stages.age_x25519 import CHUNK, MAX_HEADER, Payload, Replay
from tests.conftest import AgeKey, require_tool

SAMPLE = b"".join(chunks(3 << 20))


def b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def public_bytes(recipient: str) -> bytes:
    identity_less = pyrage.x25519.Recipient.from_str(recipient)
    return age_x25519._bech32_payload(str(identity_less), "age") or b""


def seal(
    recipient: str,
    pieces: list[tuple[bytes, bool]],
    *,
    extra_stanzas: list[bytes] = (),  # type: ignore[assignment]
    damage_mac: bool = False,
    version: bytes = b"age-encryption.org/v1",
) -> bytes:
    """An age file to ``recipient`` whose payload chunks are ``pieces``: (plaintext, last)."""
    file_key = os.urandom(16)
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    their = public_bytes(recipient)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(their))
    wrap = hkdf(shared, share + their, b"age-encryption.org/v1/X25519")
    body = ChaCha20Poly1305(wrap).encrypt(bytes(12), file_key, None)
    header = version + b"\n"
    header += b"-> X25519 " + b64(share) + b"\n" + b64(body) + b"\n"
    for stanza in extra_stanzas:
        header += stanza
    header += b"---"
    mac = hmac.digest(hkdf(file_key, b"", b"header"), header, "sha256")
    if damage_mac:
        mac = bytes([mac[0] ^ 1]) + mac[1:]
    nonce = os.urandom(16)
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    payload = b"".join(
        aead.encrypt((counter << 8 | last).to_bytes(12, "big"), plain, None)
        for counter, (plain, last) in enumerate(pieces)
    )
    return header + b" " + b64(mac) + b"\n" + nonce + payload


def split(data: bytes) -> list[tuple[bytes, bool]]:
    """``data`` in chunks as age writes them: full chunks, the last one flagged."""
    parts = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    return [(part, i == len(parts) - 1) for i, part in enumerate(parts)]


def ours(data: bytes, identities: list[Any]) -> bytes:
    out = io.BytesIO()
    age.decrypt(io.BytesIO(data), out, identities, "s3://b/k")
    return out.getvalue()


def pyrages(data: bytes, identities: list[Any]) -> bytes:
    return bytes(pyrage.decrypt(data, identities))


def outcome(decrypt: Callable[[bytes, list[Any]], bytes], data: bytes, ids: list[Any]) -> Any:
    try:
        return decrypt(data, ids)
    except (EncryptionError, pyrage.DecryptError):
        return "refused"


@pytest.fixture
def identities(age_key: AgeKey) -> list[Any]:
    return age.load_identities([age_key.identity_file], None)


def opened(data: bytes, identities: list[Any]) -> Payload | Replay:
    keys = age_x25519.x25519_keys(identities)
    assert keys is not None
    return age_x25519.open_payload(io.BytesIO(data), keys, age.BLOCK)


# --- files pyrage and the age CLI write ---------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 16 * CHUNK, 16 * CHUNK + 1, 3 << 20],
    ids=lambda n: f"{n}B",
)
def test_pyrage_files_of_every_edge_size(age_key: AgeKey, identities: list[Any], size: int) -> None:
    encrypted = bytes(
        pyrage.encrypt(SAMPLE[:size], [pyrage.x25519.Recipient.from_str(age_key.recipient)])
    )
    assert isinstance(opened(encrypted, identities), Payload)  # decrypted here, not by pyrage
    assert ours(encrypted, identities) == SAMPLE[:size]


def test_age_cli_files(age_key: AgeKey, other_age_key: AgeKey) -> None:
    age_cli = require_tool("age")
    encrypted = subprocess.run(
        [age_cli, "-r", other_age_key.recipient, "-r", age_key.recipient],
        input=SAMPLE, capture_output=True, check=True,
    ).stdout  # fmt: skip
    identities = age.load_identities([other_age_key.identity_file, age_key.identity_file], None)
    for keys in (identities, identities[::-1], identities[1:]):
        assert isinstance(opened(encrypted, keys), Payload)
        assert ours(encrypted, keys) == SAMPLE


def test_keys_read_as_pyrage_reads_them(age_key: AgeKey) -> None:
    keys = age_x25519.x25519_keys([pyrage.x25519.Identity.from_str(age_key.identity)])
    assert keys is not None
    assert keys[0].public == public_bytes(age_key.recipient)


# --- crafted payloads: ours and pyrage agree -------------------------------------------------


FULL, HALF = SAMPLE[:CHUNK], SAMPLE[: CHUNK // 2]
PAYLOADS = {
    "empty": [(b"", True)],
    "one-short-chunk": [(HALF, True)],
    "full-last-chunk": [(FULL, False), (FULL, True)],
    "many-chunks": split(SAMPLE[: 40 * CHUNK + 5]),
    "empty-last-chunk-after-data": [(FULL, False), (b"", True)],
    "no-last-chunk": [(FULL, False), (FULL, False)],
    "last-chunk-then-more": [(FULL, True), (FULL, True)],
    "short-chunk-not-last": [(HALF, False), (HALF, True)],
    "first-chunk-flagged-last-then-more": [(HALF, True), (HALF, True)],
}


@pytest.mark.parametrize("pieces", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_crafted_payloads(age_key: AgeKey, identities: list[Any], pieces: Any) -> None:
    encrypted = seal(age_key.recipient, pieces)
    assert isinstance(opened(encrypted, identities), Payload)
    assert outcome(ours, encrypted, identities) == outcome(pyrages, encrypted, identities)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: d[:-1], id="last-byte-cut"),
        pytest.param(lambda d: d[: -(CHUNK + 16 + 1)], id="cut-inside-a-chunk"),
        pytest.param(lambda d: d[: -(CHUNK // 2 + 16)], id="whole-last-chunk-cut"),
        pytest.param(lambda d: d + b"\0", id="one-byte-appended"),
        pytest.param(lambda d: d[:300] + bytes([d[300] ^ 1]) + d[301:], id="first-chunk-flipped"),
        pytest.param(lambda d: d[:-5] + bytes([d[-5] ^ 0x80]) + d[-4:], id="last-tag-flipped"),
    ],
)
def test_damaged_payloads_are_refused(
    age_key: AgeKey, identities: list[Any], damage: Callable[[bytes], bytes]
) -> None:
    encrypted = damage(seal(age_key.recipient, [(FULL, False), (FULL, False), (HALF, True)]))
    with pytest.raises(EncryptionError, match="s3://b/k is corrupted or truncated"):
        ours(encrypted, identities)
    assert outcome(pyrages, encrypted, identities) == "refused"


def test_nothing_unauthenticated_is_passed_on(age_key: AgeKey, identities: list[Any]) -> None:
    plain = SAMPLE[: 40 * CHUNK]
    encrypted = bytearray(seal(age_key.recipient, split(plain)))
    encrypted[-1000] ^= 1  # inside the last chunk
    out = io.BytesIO()
    with pytest.raises(EncryptionError):
        age.decrypt(io.BytesIO(bytes(encrypted)), out, identities, "s3://b/k")
    assert plain.startswith(out.getvalue())
    assert len(out.getvalue()) <= len(plain) - CHUNK  # the damaged chunk never came out


# --- headers this module leaves to pyrage, which reads them from the first byte --------------


GREASE = b"-> y&-grease )x\n" + b64(os.urandom(48)) + b"\n" + b64(os.urandom(10)) + b"\n"


def test_other_stanzas_are_skipped(age_key: AgeKey, identities: list[Any]) -> None:
    exactly_one_line = b"-> z-grease\n" + b64(os.urandom(48)) + b"\n\n"
    encrypted = seal(age_key.recipient, split(HALF), extra_stanzas=[GREASE, exactly_one_line])
    assert isinstance(opened(encrypted, identities), Payload)
    assert ours(encrypted, identities) == pyrages(encrypted, identities) == HALF


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda r: seal(r, split(HALF), damage_mac=True), id="bad-mac"),
        pytest.param(lambda r: seal(r, split(HALF), version=b"age-encryption.org/v2"), id="v2"),
        pytest.param(lambda r: seal(r, split(HALF))[:150], id="header-cut"),
        pytest.param(
            lambda r: seal(r, split(HALF), extra_stanzas=[b"-> scrypt AAAA 10\nAAAA\n"]),
            id="scrypt-stanza",
        ),
        pytest.param(lambda r: seal(r, split(HALF), extra_stanzas=[b"->  x\n\n"]), id="empty-arg"),
        pytest.param(lambda r: seal(r, split(HALF), extra_stanzas=[b"-> x\n-> y\n"]), id="not-b64"),
    ],
)
def test_unhandled_headers_go_to_pyrage_from_the_first_byte(
    age_key: AgeKey, identities: list[Any], make: Callable[[str], bytes]
) -> None:
    encrypted = make(age_key.recipient)
    replay = opened(encrypted, identities)
    assert isinstance(replay, Replay)
    assert replay.read(-1) + replay.read(-1) == encrypted  # what was read, then the rest
    assert outcome(ours, encrypted, identities) == outcome(pyrages, encrypted, identities)


def test_a_header_past_the_limit_is_left_to_pyrage(age_key: AgeKey, identities: list[Any]) -> None:
    body = (b"A" * 64 + b"\n") * (MAX_HEADER // 64 + 1) + b"\n"
    encrypted = seal(age_key.recipient, split(HALF), extra_stanzas=[b"-> x\n" + body])
    replay = opened(encrypted, identities)
    assert isinstance(replay, Replay)  # (pyrage reads such headers in quadratic time: not here)
    assert replay.read(-1) + replay.read(-1) == encrypted


def test_no_matching_key_is_pyrages_message(age_key: AgeKey, other_age_key: AgeKey) -> None:
    encrypted = seal(age_key.recipient, split(HALF))
    others = age.load_identities([other_age_key.identity_file], None)
    assert isinstance(opened(encrypted, others), Replay)
    with pytest.raises(EncryptionError, match="none of the given identities can decrypt"):
        ours(encrypted, others)


def test_armored_files_and_ssh_keys_are_pyrages(tmp_path: Path, age_key: AgeKey) -> None:
    keygen = require_tool("ssh-keygen")
    subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")], check=True
    )
    ssh_ids = age.load_identities([tmp_path / "id"], None)
    assert age_x25519.x25519_keys(ssh_ids) is None
    assert (
        age_x25519.x25519_keys([*ssh_ids, *age.load_identities([age_key.identity_file], None)])
        is None
    )
    recipients = [age.parse_recipient((tmp_path / "id.pub").read_text())]
    encrypted = bytes(pyrage.encrypt(HALF, recipients))
    assert ours(encrypted, ssh_ids) == HALF
    armored = io.BytesIO()
    age.encrypt(io.BytesIO(HALF), armored, [age.parse_recipient(age_key.recipient)])
    text = b"-----BEGIN AGE ENCRYPTED FILE-----\n" + base64.encodebytes(armored.getvalue())
    assert isinstance(opened(text, age.load_identities([age_key.identity_file], None)), Replay)
