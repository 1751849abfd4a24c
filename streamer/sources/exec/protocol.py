"""The names and numbers of the exec subprotocols, and the reading of their exit Status.

``v5.channel.k8s.io`` (with ``v4.channel.k8s.io`` as the fallback a server may pick)
multiplexes channels over binary WebSocket messages whose first byte is the channel: 0 stdin,
1 stdout, 2 stderr, 3 the exit Status (JSON), 255 CLOSE (v5 only: ``[255, 0]`` closes stdin).

Everything here is a pure decision over plain data, so it is tested without a connection.
"""

from __future__ import annotations

from typing import Any, Final

from streamer.sources.base import ExitStatus

__all__ = [
    "CLOSE",
    "FIRST_VERSION_WITH_CLOSE",
    "STATUS",
    "STDERR",
    "STDIN",
    "STDOUT",
    "V4_PROTOCOL",
    "V5_PROTOCOL",
    "parse_status",
]

V5_PROTOCOL: Final = "v5.channel.k8s.io"
V4_PROTOCOL: Final = "v4.channel.k8s.io"
STDIN: Final = 0
STDOUT: Final = 1
STDERR: Final = 2
STATUS: Final = 3
CLOSE: Final = 255
#: Kubernetes supports the close signal (v5.channel.k8s.io) from this version on.
FIRST_VERSION_WITH_CLOSE: Final = (1, 30)


def parse_status(status: Any) -> tuple[ExitStatus | None, str | None]:
    """Read a Status object from channel 3: the exit status, or the server's failure message.

    Total over any JSON value: an exception here would escape a backup's ``readinto()`` as a
    traceback, and end a restore's reader thread.
    """
    if not isinstance(status, dict):
        return None, "the API server sent an unreadable exit status"
    if status.get("status") == "Success":
        return ExitStatus(0, "exit code 0"), None
    message = str(status.get("message") or status.get("reason") or "no message")
    details = status.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    if status.get("reason") == "NonZeroExitCode" and isinstance(causes, list):
        for cause in causes:
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                try:
                    code = int(str(cause.get("message")))
                except ValueError:
                    break
                if code != 0:
                    return ExitStatus(code, f"exit code {code}"), None
    return None, message
