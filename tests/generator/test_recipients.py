"""The recipient check the generator uses (``streamer.recipients``) agrees with the age library.

``backup-gen validate`` must refuse what ``streamer backup`` would refuse, without loading
pyrage: each case here is checked both ways, the pure check and the streamer's own parser
(:func:`streamer.stages.age.parse_recipient`, which pyrage backs).
"""

from __future__ import annotations

import base64
import random
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from generator.errors import ValidationFailed
from generator.generate import validate_texts
from streamer.errors import ConfigError
from streamer.recipients import RSA_MAX_BITS, RSA_MIN_BITS, check_recipient, recipient_kind
from streamer.stages import age
from tests.conftest import AgeKey, require_tool
from tests.generator.conftest import GOLDEN

BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _accepted_by_age(text: str) -> bool:
    try:
        age.parse_recipient(text)
    except ConfigError:
        return False
    return True


def _refusal(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        check_recipient(text)
    return str(info.value)


@pytest.fixture(scope="module")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Public keys as ``ssh-keygen`` writes them, with their comment."""
    keygen = require_tool("ssh-keygen")
    directory = tmp_path_factory.mktemp("ssh")
    keys = {}
    for kind, bits in (("ed25519", []), ("rsa", ["-b", "2048"])):
        path = directory / kind
        subprocess.run([keygen, "-q", "-t", kind, *bits, "-N", "", "-f", str(path)], check=True)
        keys[f"ssh-{kind}"] = Path(f"{path}.pub").read_text().strip()
    return keys


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _mpint(value: int) -> bytes:
    return _string(value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b"")


def _rsa(exponent: int, modulus: int, extra: bytes = b"") -> str:
    blob = _string(b"ssh-rsa") + _mpint(exponent) + _mpint(modulus) + extra
    return "ssh-rsa " + base64.b64encode(blob).decode()


def _ed25519(point: bytes, kind: bytes = b"ssh-ed25519") -> str:
    return "ssh-ed25519 " + base64.b64encode(_string(kind) + _string(point)).decode()


def _blob(key: str) -> bytes:
    return base64.b64decode(key.split()[1])


# --- keys both accept --------------------------------------------------------------------------


def test_real_keys_are_accepted(age_key: AgeKey, ssh_keys: dict[str, str]) -> None:
    assert check_recipient(age_key.recipient) == "x25519"
    assert check_recipient(f"  {age_key.recipient}\n") == "x25519"
    for kind, key in ssh_keys.items():
        assert check_recipient(key) == kind
        assert check_recipient(" ".join(key.split()[:2])) == kind  # without the comment
        assert check_recipient(key.replace(" ", "\t", 2).replace("\t", " ", 1)) == kind
        assert _accepted_by_age(key)


@pytest.mark.parametrize("bits", [RSA_MIN_BITS, 3072, RSA_MAX_BITS], ids=lambda b: f"{b}-bit")
def test_rsa_sizes_age_takes(bits: int) -> None:
    key = _rsa(65537, (1 << (bits - 1)) + 1)
    assert check_recipient(key) == "ssh-rsa"
    assert _accepted_by_age(key)


# --- keys both refuse ----------------------------------------------------------------------


def _swap_char(key: str, at: int) -> str:
    replacement = BECH32[(BECH32.index(key[at]) + 1) % len(BECH32)]
    return key[:at] + replacement + key[at + 1 :]


BAD_AGE: dict[str, tuple[Callable[[str], str], str]] = {
    "one-char-mistyped": (lambda k: _swap_char(k, 20), "checksum does not match"),
    "last-char-mistyped": (lambda k: _swap_char(k, len(k) - 1), "checksum does not match"),
    "char-missing": (lambda k: k[:20] + k[21:], "checksum does not match"),
    "char-doubled": (lambda k: k[:20] + k[20] + k[20:], "checksum does not match"),
    "truncated": (lambda k: k[:-10], "checksum does not match"),
    "letter-outside-bech32": (lambda k: k[:20] + "b" + k[21:], "'b' is not a bech32 character"),
    "upper-case-inside": (lambda k: k[:20] + k[20:].upper(), "is not a bech32 character"),
    "a-one-inside": (lambda k: k[:20] + "1" + k[21:], "'1' is not a bech32 character"),
    "too-short": (lambda k: "age1qpzry", "too short"),
    "not-a-key": (lambda k: "age1notakey", "'o' is not a bech32 character"),
}


@pytest.mark.parametrize("case", BAD_AGE, ids=str)
def test_broken_age_keys(case: str, age_key: AgeKey) -> None:
    mangle, reason = BAD_AGE[case]
    text = mangle(age_key.recipient)
    assert reason in _refusal(text)
    assert "is not a valid key" in _refusal(text)
    assert not _accepted_by_age(text)


def _bech32_checksum(hrp: str, values: list[int]) -> list[int]:
    """A valid checksum for ``values``, computed with the same polynomial as BIP 173."""
    generators = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    checksum = 1
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    for value in [*expanded, *values, 0, 0, 0, 0, 0, 0]:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(generators):
            if (top >> i) & 1:
                checksum ^= generator
    checksum ^= 1
    return [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]


def _bech32(hrp: str, values: list[int]) -> str:
    return hrp + "1" + "".join(BECH32[v] for v in values + _bech32_checksum(hrp, values))


@pytest.mark.parametrize(
    ("values", "length"),
    [
        pytest.param([0] * 50, 31, id="31-bytes"),
        pytest.param([0] * 53, 33, id="33-bytes"),
        pytest.param([0] * 64, 40, id="40-bytes"),
    ],
)
def test_well_formed_bech32_of_the_wrong_length(values: list[int], length: int) -> None:
    text = _bech32("age", values)
    assert f"holds {length} bytes; an age1… key holds 32" in _refusal(text)
    assert not _accepted_by_age(text)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([0] * 51 + [1], id="padding-bits-set"),
        pytest.param([0] * 54, id="six-bits-of-padding"),
    ],
)
def test_bech32_padding_is_checked(values: list[int]) -> None:
    """As BIP 173 and Go's age do; pyrage lets the first case through, age-keygen never
    writes it, and the checksum already catches a mistyped character."""
    assert "does not end on a whole byte" in _refusal(_bech32("age", values))


def test_the_bech32_checksum_is_the_one_age_computes() -> None:
    text = _bech32("age", [3] * 51 + [16])
    assert check_recipient(text) == "x25519"
    assert _accepted_by_age(text)


BAD_SSH: dict[str, tuple[Callable[[dict[str, str]], str], str]] = {
    "no-key": (lambda k: "ssh-ed25519  " + k["ssh-ed25519"].split()[1], "no base64 key"),
    "not-base64": (lambda k: "ssh-ed25519 AAAA$$$$", "not valid base64"),
    "broken-base64": (lambda k: "ssh-ed25519 AAAAbroken", "cut short"),
    "cut-short": (lambda k: "ssh-ed25519 " + k["ssh-ed25519"].split()[1][:30], "32-byte"),
    "rsa-blob-named-ed25519": (
        lambda k: "ssh-ed25519 " + k["ssh-rsa"].split()[1],
        "an 'ssh-rsa' key, not 'ssh-ed25519'",
    ),
    "ed25519-blob-named-rsa": (
        lambda k: "ssh-rsa " + k["ssh-ed25519"].split()[1],
        "an 'ssh-ed25519' key, not 'ssh-rsa'",
    ),
    "ed25519-key-short": (
        lambda k: _ed25519(_blob(k["ssh-ed25519"])[-32:-1]),
        "does not hold a 32-byte",
    ),
    "ed25519-not-on-the-curve": (lambda k: _ed25519(b"\x02" + bytes(31)), "not a point"),
    "rsa-truncated": (
        lambda k: "ssh-rsa " + base64.b64encode(_blob(k["ssh-rsa"])[:-1]).decode(),
        "cut short",
    ),
    "rsa-1024-bit": (lambda k: _rsa(65537, (1 << 1023) + 1), "too small"),
    "rsa-2047-bit": (lambda k: _rsa(65537, (1 << 2046) + 1), "too small"),
    "rsa-4097-bit": (lambda k: _rsa(65537, (1 << 4096) + 1), "too large"),
    "rsa-exponent-1": (lambda k: _rsa(1, (1 << 2047) + 1), "exponent 1"),
    "rsa-exponent-even": (lambda k: _rsa(65536, (1 << 2047) + 1), "exponent 65536"),
    "rsa-exponent-huge": (lambda k: _rsa((1 << 33) + 1, (1 << 2047) + 1), "exponent"),
    "rsa-modulus-negative": (
        lambda k: (
            "ssh-rsa "
            + base64.b64encode(
                _string(b"ssh-rsa") + _mpint(65537) + _string(b"\x80" + bytes(256))
            ).decode()
        ),
        "SSH's encoding",
    ),
    "rsa-modulus-zero-padded": (
        lambda k: (
            "ssh-rsa "
            + base64.b64encode(
                _string(b"ssh-rsa") + _mpint(65537) + _string(b"\0\0" + b"\x80" + bytes(255))
            ).decode()
        ),
        "SSH's encoding",
    ),
}


@pytest.mark.parametrize("case", BAD_SSH, ids=str)
def test_broken_ssh_keys(case: str, ssh_keys: dict[str, str]) -> None:
    make, reason = BAD_SSH[case]
    text = make(ssh_keys)
    assert reason in _refusal(text)
    assert not _accepted_by_age(text)


def test_bytes_after_the_key_are_refused(ssh_keys: dict[str, str]) -> None:
    """Stricter than age, which ignores them: no key ssh-keygen writes has any."""
    for kind, key in ssh_keys.items():
        text = f"{kind} " + base64.b64encode(_blob(key) + b"xy").decode()
        assert "2 unexpected bytes follow the key" in _refusal(text)


def test_ed25519_points_are_accepted_exactly_when_age_accepts_them() -> None:
    rng = random.Random(20240611)
    verdicts = set()
    for _ in range(64):
        text = _ed25519(rng.randbytes(32))
        try:
            check_recipient(text)
            ours = True
        except ConfigError:
            ours = False
        assert ours == _accepted_by_age(text), text
        verdicts.add(ours)
    assert verdicts == {True, False}  # both outcomes were exercised


# --- the shape of a recipient --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("hello", id="garbage"),
        pytest.param("", id="empty"),
        pytest.param("ssh-dss AAAAB3NzaC1kc3M", id="unsupported-ssh-type"),
        pytest.param("ssh-ed25519\tAAAAC3NzaC1lZDI1NTE5", id="tab-after-the-type"),
        pytest.param("AGE1QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", id="upper-case"),
    ],
)
def test_the_shape_messages_are_the_streamers(text: str) -> None:
    with pytest.raises(ConfigError) as streamer_says:
        age.parse_recipient(text)
    assert _refusal(text) == str(streamer_says.value)
    assert "expected an age1" in str(streamer_says.value)


def test_a_secret_key_is_refused_without_echoing_it(age_key: AgeKey) -> None:
    message = _refusal(age_key.identity)
    assert "not a recipient" in message
    assert age_key.identity[15:30] not in message
    with pytest.raises(ConfigError, match="not a recipient"):
        recipient_kind(age_key.identity)


def test_validate_names_the_recipient_at_fault(age_key: AgeKey) -> None:
    text = (GOLDEN / "encryption-only.in.yaml").read_text()
    assert "recipients:" in text
    broken = _swap_char(age_key.recipient, 30)
    text = text.replace("    recipients:\n", f"    recipients:\n    - {broken}\n", 1)
    with pytest.raises(ValidationFailed) as info:
        validate_texts([("run.yaml", text)])
    (problem,) = info.value.problems
    assert problem.path.endswith(".encryption.recipients[0]")
    assert "checksum does not match" in problem.message
