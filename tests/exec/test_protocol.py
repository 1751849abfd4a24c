"""Reading the exec protocol's exit Status: a pure decision over any JSON value."""

from __future__ import annotations

import pytest

from streamer.sources.base import ExitStatus
from streamer.sources.exec.protocol import parse_status


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param({"status": "Success"}, (ExitStatus(0, "exit code 0"), None), id="success"),
        pytest.param(
            {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "message": "command terminated with non-zero exit code",
                "details": {"causes": [{"reason": "ExitCode", "message": "42"}]},
            },
            (ExitStatus(42, "exit code 42"), None),
            id="non-zero",
        ),
        pytest.param(
            {"status": "Failure", "reason": "NonZeroExitCode", "message": "no code given"},
            (None, "no code given"),
            id="non-zero-without-code",
        ),
        pytest.param(
            {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "message": "no code given",
                "details": {"causes": [{"reason": "ExitCode", "message": None}]},
            },
            (None, "no code given"),
            id="non-zero-with-null-code",
        ),
        pytest.param(
            {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "message": "no code given",
                "details": {"causes": 3},
            },
            (None, "no code given"),
            id="non-zero-with-causes-not-a-list",
        ),
        pytest.param(
            {"status": "Failure", "reason": "InternalError", "message": "OCI runtime exec failed"},
            (None, "OCI runtime exec failed"),
            id="internal-error",
        ),
        pytest.param(
            ["not", "a", "status"],
            (None, "the API server sent an unreadable exit status"),
            id="garbage",
        ),
    ],
)
def test_parse_status(status: object, expected: tuple[ExitStatus | None, str | None]) -> None:
    assert parse_status(status) == expected
