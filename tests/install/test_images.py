"""The ``Dockerfile`` builds the one release image, checked without a Docker engine: hadolint
passes on it, and it holds both entry points, runs as a numeric non-root user and is named by
the tag the generator and the Deployment use.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from generator.render import DEFAULT_IMAGE
from tests.install.conftest import DOCKERFILE, ROOT, hadolint, run

TEXT = DOCKERFILE.read_text()


def _hadolint(path: Path) -> tuple[int, str]:
    # The strictest threshold: a style finding fails as well.
    done = run([hadolint(), "--no-color", "--failure-threshold", "style", str(path)])
    return done.returncode, done.stdout + done.stderr


def _instructions(name: str) -> list[str]:
    """The arguments of every ``name`` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", TEXT)
    return [m.group(1).strip() for m in re.finditer(rf"^{name} (.*)$", joined, re.MULTILINE)]


def test_hadolint_passes() -> None:
    status, output = _hadolint(DOCKERFILE)
    assert status == 0, output


def test_hadolint_fails_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install boto3\nCMD python -m streamer\n")
    status, output = _hadolint(careless)
    assert status != 0
    for rule in ("DL3007", "DL3013", "DL3042", "DL3025"):
        assert rule in output, output


def test_every_stage_starts_from_a_tagged_base() -> None:
    stages = _instructions("FROM")
    aliases = {m.group(1) for s in stages if (m := re.search(r" AS (\S+)$", s))}
    for stage in stages:
        image = stage.split()[0]
        assert image in aliases or re.fullmatch(r"[\w./-]+:[\w.-]+", image), stage
        assert not image.endswith(":latest"), stage


def test_one_image_holds_both_entry_points() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {"streamer", "backup-gen"}
    (install,) = [r for r in _instructions("RUN") if " install " in r]
    assert '".[generator]"' in install
    for script in scripts:  # the build fails unless both start
        assert f"bin/{script} --version" in install
    assert _instructions("ENTRYPOINT") == ['["streamer"]']


def test_the_final_stage_is_non_root_and_needs_no_writable_root() -> None:
    (user,) = _instructions("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), user
    assert gid.isdigit(), user
    assert int(uid) != 0
    final = TEXT.rpartition("\nFROM ")[2]
    assert "USER" in final
    assert "--invalidation-mode unchecked-hash" in TEXT  # bytecode compiled at build time
    assert "PYTHONDONTWRITEBYTECODE=1" in final


def test_the_build_command_names_the_default_image() -> None:
    tags = re.findall(r"docker build -t (\S+) \.", TEXT)
    assert tags == [DEFAULT_IMAGE]
