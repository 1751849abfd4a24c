"""The README's commands, run as a reader would run them: by bash, one after the other.

:class:`Shell` runs each command of :mod:`tests.e2e.walkthrough` as written, with
``bash -euo pipefail -c``, from a scratch copy of the checkout (the walkthrough writes
``dev-install/`` there, never into the repository), with the pinned kind, kubectl and argo first
on ``PATH``, the cluster's kubeconfig, and ``KIND_CLUSTER_NAME`` so that ``kind load`` finds the
suite's cluster. A command that assigns a variable (``RUN=$(…)``) keeps it for the commands
after it, as a terminal would; an empty value fails, since every later ``$RUN`` would too.

A failure fails the test with the command, its exit status, its output and what
``diagnose`` shows of the cluster.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from tests.e2e.cluster import fail

__all__ = ["COMMAND_TIMEOUT", "Shell"]

#: Longer than any ``--timeout`` a README command passes (10m), so kubectl's own message wins.
COMMAND_TIMEOUT = 900.0
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=\$\(.*\)", re.DOTALL)


class Shell:
    """A terminal in which the README's commands run, one at a time."""

    def __init__(
        self, cwd: Path, env: Mapping[str, str], diagnose: Callable[[], str] = lambda: ""
    ) -> None:
        self.cwd = cwd
        self.env = dict(env)
        self.diagnose = diagnose
        #: Every command that succeeded, in order.
        self.ran: list[str] = []

    def run(self, command: str, *, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run one command; its standard output (for an assignment: the value assigned)."""
        assignment = _ASSIGNMENT.fullmatch(command)
        script = command
        if assignment is not None:
            script += f'\nprintf %s "${{{assignment["name"]}}}"'
        try:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                cwd=self.cwd,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            fail(f"`{command}` did not finish within {timeout:.0f}s\n{self.diagnose()}")
        if done.returncode != 0:
            fail(
                f"`{command}` exited {done.returncode}:\n{done.stdout}{done.stderr}\n"
                f"{self.diagnose()}"
            )
        self.ran.append(command)
        if assignment is None:
            return done.stdout
        name, value = assignment["name"], done.stdout.strip()
        if not value:
            fail(f"`{command}` set {name} to nothing\n{self.diagnose()}")
        self.env[name] = value
        return value
