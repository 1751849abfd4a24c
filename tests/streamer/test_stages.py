"""gzip and age stages, alone and against the real ``gzip`` and ``age`` commands."""

from __future__ import annotations

import gc
import io
import os
import subprocess
from pathlib import Path
from typing import Any

import pyrage
import pytest

from streamer.errors import CompressionError, ConfigError, EncryptionError
from streamer.sample import chunks
from streamer.stages import age
from streamer.stages.gzip import INFLATE_CHUNK, GunzipWriter, GzipReader, engine_for
from tests.conftest import AgeKey, require_tool

SAMPLE = b"".join(chunks(4 << 20))


def gzip_bytes(data: bytes, level: int | None = None) -> bytes:
    reader = GzipReader(io.BytesIO(data), level)
    out = bytearray()
    while piece := reader.read(8192):
        out += piece
    return bytes(out)


def gunzip_bytes(data: bytes, step: int = 7919) -> bytes:
    sink = io.BytesIO()
    writer = GunzipWriter(sink, "test object")
    for i in range(0, len(data), step):
        writer.write(data[i : i + step])
    writer.finish()
    return sink.getvalue()


@pytest.mark.parametrize("level", [-2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_every_level_is_read_by_gzip_cli(level: int) -> None:
    gzip = require_tool("gzip")
    compressed = gzip_bytes(SAMPLE, level)
    assert (
        subprocess.run([gzip, "-d"], input=compressed, capture_output=True, check=True).stdout
        == SAMPLE
    )
    assert gunzip_bytes(compressed) == SAMPLE


def test_higher_levels_never_give_larger_output() -> None:
    sizes = {level: len(gzip_bytes(SAMPLE, level)) for level in range(1, 10)}
    for level in range(2, 10):
        assert sizes[level] <= sizes[level - 1], sizes


def test_default_within_five_percent_of_gzip_6() -> None:
    gzip = require_tool("gzip")
    reference = subprocess.run([gzip, "-6"], input=SAMPLE, capture_output=True, check=True).stdout
    assert len(gzip_bytes(SAMPLE)) <= 1.05 * len(reference)


def test_level_zero_stores_and_minus_two_is_huffman_only() -> None:
    assert len(gzip_bytes(SAMPLE, 0)) > len(SAMPLE)
    assert engine_for(-2).strategy is not None


@pytest.mark.parametrize("level", [-3, 10, 100])
def test_level_out_of_range(level: int) -> None:
    with pytest.raises(ConfigError, match=r"out of range: use -2\.\.9"):
        engine_for(level)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"x", id="one-byte"),
        pytest.param(os.urandom(3 << 20), id="incompressible"),
    ],
)
def test_round_trip_edges(data: bytes) -> None:
    assert gunzip_bytes(gzip_bytes(data)) == data


def test_gzip_cli_output_and_concatenated_members_decompress() -> None:
    gzip = require_tool("gzip")
    a = subprocess.run([gzip, "-9"], input=b"first ", capture_output=True, check=True).stdout
    b = subprocess.run([gzip, "-1"], input=b"second", capture_output=True, check=True).stdout
    assert gunzip_bytes(a + b, step=5) == b"first second"


def test_truncated_gzip_is_an_error() -> None:
    data = gzip_bytes(SAMPLE)
    with pytest.raises(CompressionError, match="test object is truncated"):
        gunzip_bytes(data[:-4])


def test_corrupted_gzip_is_an_error() -> None:
    data = bytearray(gzip_bytes(SAMPLE))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(CompressionError, match="not valid gzip"):
        gunzip_bytes(bytes(data))


# --- age ---------------------------------------------------------------------------------


def ssh_key(tmp_path: Path, kind: str) -> tuple[str, Path]:
    keygen = require_tool("ssh-keygen")
    path = tmp_path / kind
    bits = ["-b", "2048"] if kind == "rsa" else []
    subprocess.run([keygen, "-q", "-t", kind, *bits, "-N", "", "-f", str(path)], check=True)
    return (tmp_path / f"{kind}.pub").read_text().strip(), path


def encrypt_bytes(data: bytes, recipients: list[object]) -> bytes:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(data), out, recipients)
    return out.getvalue()


def decrypt_bytes(data: bytes, identities: list[object]) -> bytes:
    out = io.BytesIO()
    age.decrypt(io.BytesIO(data), out, identities, "s3://b/k")
    return out.getvalue()


def test_x25519_ed25519_and_rsa_recipients_at_once(tmp_path: Path, age_key: AgeKey) -> None:
    ed_pub, ed_priv = ssh_key(tmp_path, "ed25519")
    rsa_pub, rsa_priv = ssh_key(tmp_path, "rsa")
    recipients = [age.parse_recipient(r) for r in (age_key.recipient, ed_pub, rsa_pub)]
    encrypted = encrypt_bytes(SAMPLE, recipients)
    assert encrypted.startswith(age.AGE_MAGIC)
    for identity_file in (age_key.identity_file, ed_priv, rsa_priv):
        identities = age.load_identities([identity_file], None)
        assert decrypt_bytes(encrypted, identities) == SAMPLE


def test_identity_from_environment(age_key: AgeKey) -> None:
    encrypted = encrypt_bytes(b"data", [age.parse_recipient(age_key.recipient)])
    assert decrypt_bytes(encrypted, age.load_identities([], age_key.identity)) == b"data"


def test_recipients_file(tmp_path: Path, age_key: AgeKey, other_age_key: AgeKey) -> None:
    path = tmp_path / "recipients.txt"
    path.write_text(f"# team keys\n{age_key.recipient}\n\n{other_age_key.recipient}\n")
    assert len(age.read_recipients_file(path)) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("age1notakey", "is not a valid key", id="bad-bech32"),
        pytest.param("ssh-ed25519 AAAAbroken", "is not a valid key", id="bad-ssh"),
        pytest.param("ssh-dss AAAAB3NzaC1kc3M", "expected an age1", id="unsupported-ssh-type"),
        pytest.param("hello", "expected an age1", id="garbage"),
        pytest.param("", "expected an age1", id="empty"),
    ],
)
def test_bad_recipients(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        age.parse_recipient(text)


def test_secret_key_as_recipient_is_refused_without_echoing_it(age_key: AgeKey) -> None:
    with pytest.raises(ConfigError) as info:
        age.parse_recipient(age_key.identity)
    assert "not a recipient" in str(info.value)
    assert age_key.identity not in str(info.value)
    assert age_key.identity[15:30] not in str(info.value)


def test_bad_identity_line_is_named_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "key.txt"
    secret = "AGE-SECRET-KEY-1TYPOTYPOTYPOTYPO"
    path.write_text(f"# key\n{secret}\n")
    with pytest.raises(ConfigError, match="line 2 is not an age identity") as info:
        age.load_identities([path], None)
    assert secret not in str(info.value)


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(lambda path: age.load_identities([path], None), id="identity-file"),
        pytest.param(age.read_recipients_file, id="recipients-file"),
    ],
)
def test_a_binary_key_file_is_a_config_error(tmp_path: Path, load: Any) -> None:
    path = tmp_path / "key.bin"
    path.write_bytes(b"\x9e\xff\x00 not text")
    with pytest.raises(ConfigError, match="is not a text file of keys") as info:
        load(path)
    assert "0x9e" not in str(info.value)


def test_wrong_identity(age_key: AgeKey, other_age_key: AgeKey) -> None:
    encrypted = encrypt_bytes(b"data", [age.parse_recipient(age_key.recipient)])
    with pytest.raises(EncryptionError, match="none of the given identities can decrypt s3://b/k"):
        decrypt_bytes(encrypted, age.load_identities([other_age_key.identity_file], None))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_ciphertext(age_key: AgeKey, damage: str) -> None:
    encrypted = bytearray(encrypt_bytes(SAMPLE, [age.parse_recipient(age_key.recipient)]))
    if damage == "flip":
        encrypted[len(encrypted) // 2] ^= 1
    else:
        del encrypted[-100:]
    with pytest.raises(EncryptionError, match="corrupted or truncated"):
        decrypt_bytes(bytes(encrypted), age.load_identities([age_key.identity_file], None))


def test_reader_errors_pass_through_encryption(age_key: AgeKey) -> None:
    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            raise ConnectionResetError("source went away")

    with pytest.raises(ConnectionResetError, match="source went away"):
        age.encrypt(Failing(), io.BytesIO(), [age.parse_recipient(age_key.recipient)])


def test_age_cli_reads_ours_and_we_read_age_cli(tmp_path: Path, age_key: AgeKey) -> None:
    age_cli = require_tool("age")
    ours = encrypt_bytes(SAMPLE, [age.parse_recipient(age_key.recipient)])
    plain = subprocess.run(
        [age_cli, "-d", "-i", str(age_key.identity_file)],
        input=ours,
        capture_output=True,
        check=True,
    ).stdout
    assert plain == SAMPLE
    theirs = subprocess.run(
        [age_cli, "-r", age_key.recipient], input=SAMPLE, capture_output=True, check=True
    ).stdout
    assert decrypt_bytes(theirs, age.load_identities([age_key.identity_file], None)) == SAMPLE
    armored = subprocess.run(
        [age_cli, "-a", "-r", age_key.recipient], input=b"armor", capture_output=True, check=True
    ).stdout
    assert armored.startswith(age.ARMOR_MAGIC)
    assert decrypt_bytes(armored, [pyrage.x25519.Identity.from_str(age_key.identity)]) == b"armor"


# --- how the stages hand data on (what bench/restore_db.py measured) -----------------------


class Counting(io.RawIOBase):
    """A reader or writer that records the size of every call it gets."""

    def __init__(self, data: bytes = b"") -> None:
        self._source = io.BytesIO(data)
        self.sink = bytearray()
        self.calls: list[int] = []

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.calls.append(size)
        return self._source.read(size)

    def write(self, data: Any) -> int:
        self.calls.append(len(data))
        self.sink += data
        return len(data)


@pytest.mark.parametrize("direction", ["encrypt", "decrypt"])
def test_age_moves_whole_blocks_not_pyrages_pieces(age_key: AgeKey, direction: str) -> None:
    recipients = [age.parse_recipient(age_key.recipient)]
    source = SAMPLE if direction == "encrypt" else encrypt_bytes(SAMPLE, recipients)
    reader, writer = Counting(source), Counting()
    if direction == "encrypt":
        age.encrypt(reader, writer, recipients)
        assert (
            decrypt_bytes(bytes(writer.sink), [pyrage.x25519.Identity.from_str(age_key.identity)])
            == SAMPLE
        )
    else:
        age.decrypt(reader, writer, age.load_identities([age_key.identity_file], None), "s3://b/k")
        assert writer.sink == SAMPLE
    # pyrage itself reads 8 KiB at a time: hundreds of calls for these 4 MiB.
    assert set(reader.calls) == {age.BLOCK}
    assert len(reader.calls) <= len(source) // age.BLOCK + 2
    assert len(writer.calls) <= len(writer.sink) // age.BLOCK + 1


def test_writer_errors_pass_through_decryption(age_key: AgeKey) -> None:
    class Closed(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            raise BrokenPipeError("the command stopped reading")

    encrypted = encrypt_bytes(b"small", [age.parse_recipient(age_key.recipient)])
    identities = age.load_identities([age_key.identity_file], None)
    with pytest.raises(BrokenPipeError, match="the command stopped reading"):
        age.decrypt(io.BytesIO(encrypted), Closed(), identities, "s3://b/k")


def test_one_large_gzip_write_reaches_the_sink_in_bounded_pieces() -> None:
    sink = Counting()
    writer = GunzipWriter(sink, "test object")
    writer.write(gzip_bytes(SAMPLE))  # 4 MiB of SQL, about 1.6 MB of gzip, in one write
    writer.finish()
    assert sink.sink == SAMPLE
    assert max(sink.calls) <= 4 * INFLATE_CHUNK  # SQL compresses under 4x: never the whole


def test_members_that_meet_inside_one_large_write_decompress() -> None:
    first, second = SAMPLE[: 1 << 20], SAMPLE[1 << 20 :]
    data = gzip_bytes(first) + gzip_bytes(second)
    assert len(gzip_bytes(first)) % INFLATE_CHUNK  # the boundary is inside an inflated piece
    assert gunzip_bytes(data, step=len(data)) == SAMPLE


def test_a_failed_decryption_passes_nothing_on_afterwards(age_key: AgeKey) -> None:
    """What was held back for the next block is dropped, not written when the garbage
    collector closes the writer that held it."""
    encrypted = bytearray(encrypt_bytes(SAMPLE, [age.parse_recipient(age_key.recipient)]))
    encrypted[len(encrypted) // 2] ^= 1
    writer = Counting()
    with pytest.raises(EncryptionError, match="corrupted or truncated") as info:
        age.decrypt(
            io.BytesIO(bytes(encrypted)),
            writer,
            age.load_identities([age_key.identity_file], None),
            "s3://b/k",
        )
    seen = bytes(writer.sink)
    del info  # its traceback holds the frames that hold the writer
    gc.collect()
    assert bytes(writer.sink) == seen
    assert seen == SAMPLE[: len(seen)]
